"""InCoP: retrain only as long as the retraining matters (docs/algorithms.md §4.3).

An intermediate iteration retrains so that the next prune chooses the right weights: it stops once that decision is
settled (it moves between two checks no more than a converged network's decision does) or the network is already as
consistent with the dense one as the dense network is with itself. The final iteration retrains the network that
ships: it stops once it has recovered (top-1 disagreement within the run's accuracy budget) or its consistency has
stopped improving beyond its own noise. Validation accuracy back at the dense best always stops.
"""

from __future__ import annotations

import math
import time
from typing import Literal, Optional, Union

import torch
from pydantic import ConfigDict, Field, PositiveFloat, PositiveInt

from incop_core.pruning.decision import decision_distance, removed
from incop_core.consistency.distances import DISTANCES, Snapshot
from incop_core.consistency.distances.disagreement import agreement
from incop_core.consistency.epsilon import consistent_epsilon, improved, recovered_epsilon
from incop_core.pruning.masks import prunable_weights
from incop_core.foundations.plugins import KIND_FIELD
from incop_core.criteria.base import (ACCURACY, CRITERIA, FLOW, PLATEAU, SETTLED, Criterion, CriterionContext,
                                      CriterionSettings, EpochRecord, Verdict)

DEFAULT_DISTANCE = "disagreement"
DistanceName = Literal[tuple(DISTANCES.names())]


class IncopConfig(CriterionSettings):
    model_config = ConfigDict(extra="forbid", title="InCoP (consistency distance)")  # the tab label in the Prefect UI
    kind: Literal["incop"] = Field("incop", json_schema_extra=KIND_FIELD)
    distance: DistanceName = Field(DEFAULT_DISTANCE, description="Consistency signal: " + "; ".join(
        f"{n}: {DISTANCES.get(n).summary}" for n in DISTANCES.names()))
    epsilon: Union[PositiveFloat, Literal["auto"]] = Field(
        "auto", description="Stop when the distance falls to this; 'auto' derives it per run: intermediate iterations "
                            "from the dense network's own retraining noise, the final one from tolerance_pp.")
    tolerance_pp: float = Field(1.0, gt=0, le=50, description=(
        "Accuracy budget of the shipped network, in points: the final retraining stops once the top-1 disagreement "
        "with the dense network (which bounds the probe accuracy change) is at most this, never below the probe's "
        "resolution; 1 is the publish rule's."))
    plateau_window: Union[PositiveInt, Literal["auto"]] = Field(
        "auto", description=("Final iteration: stop once the distance improved no more than its own noise over this "
                             "many epochs (McNemar's test against the check that many epochs back, so never earlier); "
                             "'auto': half of prune.max_epochs, rounded up (the last half-budget of retraining brought "
                             "nothing)."))
    final_epochs: Optional[PositiveInt] = Field(
        None, le=1000, description="Retraining epochs of the final iteration at most (None: twice prune.max_epochs).")
    check_every: PositiveInt = Field(1, description="Measure consistency after every this many epochs (and always at "
                                                    "epoch 0).")
    check_every_steps: Optional[PositiveInt] = Field(
        None, description="Final iteration: also measure consistency every this many optimiser steps (intermediate "
                          "iterations check their next prune decision every eighth of an epoch, which needs no data "
                          "pass).")

    def retrain_budget(self, max_epochs: int, final: bool) -> float:
        """Retraining epochs of one iteration at most: the final one has its own, larger cap."""
        return (self.final_epochs or 2 * max_epochs) if final else max_epochs

    def checks_decision(self, final: bool) -> bool:
        """Intermediate iterations ask whether the next prune decision is settled (every eighth of an epoch)."""
        return not final

    def check_every_epochs(self) -> int:
        return self.check_every

    def steps_between_checks(self) -> Optional[int]:
        return self.check_every_steps

    def reference_distance(self) -> Optional[str]:
        return self.distance


@CRITERIA.register("incop", IncopConfig)
class Consistency(Criterion):
    """Intermediate: decision settled, or consistent at the dense noise. Final: recovered, or no longer improving."""

    def __init__(self, config: IncopConfig, context: CriterionContext) -> None:
        if context.snapshot is None or context.dense is None:
            raise ValueError("the incop criterion needs the dense network's probe snapshot in its context")
        self.config, self.context = config, context
        self.distance = DISTANCES.get(config.distance)
        self.intermediate = not context.final and context.decide is not None
        noise, size, counted = context.noise.get(config.distance), context.probe_size, self.distance.counted
        derived = (consistent_epsilon(counted, noise, size) if self.intermediate
                   else recovered_epsilon(counted, config.tolerance_pp, noise, size))
        self.epsilon: float = derived if config.epsilon == "auto" else config.epsilon
        self.decision_noise = context.decision_noise if self.intermediate else None
        self._decision: Optional[dict[str, torch.Tensor]] = None  # removed set at the previous check
        auto = math.ceil(context.max_epochs / 2)
        self.window = max(1, auto) if config.plateau_window == "auto" else config.plateau_window
        # epoch -> (distance, agreement) at epoch ends
        self._ends: dict[float, tuple[float, Optional[torch.Tensor]]] = {}

    def measure(self, epoch: EpochRecord) -> tuple[float, Optional[torch.Tensor]]:
        current: Snapshot = self.context.snapshot(epoch.model, epoch.mask, self.distance.needs)
        value = self.distance(current, self.context.dense)
        return value, agreement(current, self.context.dense) if self.distance.counted else None

    def check(self, epoch: EpochRecord) -> Verdict:
        start = time.perf_counter()
        stop, reason, distance, moved = self._intermediate(epoch) if self.intermediate else self._final(epoch)
        return Verdict(stop, reason, distance, time.perf_counter() - start, moved)

    def _intermediate(self, epoch: EpochRecord):
        """Settled decision (any check, no data pass); consistency and accuracy at epoch-end checks."""
        decision = removed(epoch.mask,
                           self.context.decide({n: w.detach() for n, w in prunable_weights(epoch.model).items()}))
        moved = None if self._decision is None else decision_distance(decision, self._decision)
        self._decision = decision
        if moved is not None and self.decision_noise is not None and moved <= self.decision_noise:
            return True, SETTLED, None, moved
        if not epoch.at_epoch_end:
            return False, None, None, moved
        distance, _ = self.measure(epoch)
        if distance <= self.epsilon:
            return True, FLOW, distance, moved
        recovered = epoch.val_acc >= self.context.dense_best_val_acc
        return recovered, ACCURACY if recovered else None, distance, moved

    def _final(self, epoch: EpochRecord):
        """Recovered within the accuracy budget, back at the dense best, or no longer improving over the window."""
        distance, agree = self.measure(epoch)
        if distance <= self.epsilon:
            return True, FLOW, distance, None
        if epoch.val_acc >= self.context.dense_best_val_acc:
            return True, ACCURACY, distance, None
        if not epoch.at_epoch_end:
            return False, None, distance, None
        earlier = [e for e in self._ends if e <= epoch.epoch - self.window]  # tested once a whole window has passed
        previous = self._ends[max(earlier)] if earlier else None
        self._ends[epoch.epoch] = (distance, agree)
        flat = previous is not None and not self._improved(previous, distance, agree)
        return flat, PLATEAU if flat else None, distance, None

    def _improved(self, previous: tuple[float, Optional[torch.Tensor]], distance: float,
                  agree: Optional[torch.Tensor]) -> bool:
        """Did the distance improve beyond its own noise since `previous`? Never stop on a non-finite one."""
        before, agreed = previous
        if not (math.isfinite(before) and math.isfinite(distance)):
            return True
        if agree is not None and agreed is not None:
            return improved(int((agree & ~agreed).sum()), int((~agree & agreed).sum()))
        noise = self.context.noise.get(self.config.distance) or 0.0
        return before - distance > noise
