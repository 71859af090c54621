"""InCoP: stop once the network is consistent with the dense one again (docs/algorithms.md §4.3, §4.5).

The consistency signal is a `distance` plug-in measured on the probe set; it is checked right after
prune + rewind (epoch 0), then every `check_every` epochs and optionally every `check_every_steps` steps.
"""

from __future__ import annotations

import time
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from ..distances import DISTANCES
from ..epsilon import auto_threshold
from . import CRITERIA, CriterionContext, EpochRecord, Verdict, consistency_verdict

DEFAULT_DISTANCE = "disagreement"
DistanceName = Literal[tuple(DISTANCES.names())]


class IncopConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="InCoP (consistency distance)")  # the tab label in the Prefect UI
    kind: Literal["incop"] = "incop"
    distance: DistanceName = Field(DEFAULT_DISTANCE, description="Consistency signal: " + "; ".join(
        f"{n}: {DISTANCES.get(n).summary}" for n in DISTANCES.names()))
    epsilon: Union[PositiveFloat, Literal["auto"]] = Field(
        "auto", description="Stop when the distance falls below this; 'auto' calibrates it per iteration between the "
                            "dense network's epoch-to-epoch noise and the freshly pruned network's distance.")
    check_every: PositiveInt = Field(1, description="Check after every this many epochs (and always at epoch 0).")
    check_every_steps: Optional[PositiveInt] = Field(None, description="Also check every this many optimiser steps.")


@CRITERIA.register("incop", IncopConfig)
class Consistency:
    """Distance under epsilon, or dense-best validation accuracy, stops retraining."""

    def __init__(self, config: IncopConfig, context: CriterionContext) -> None:
        if context.snapshot is None or context.dense is None:
            raise ValueError("the incop criterion needs the dense network's probe snapshot in its context")
        self.config, self.context = config, context
        self.distance = DISTANCES.get(config.distance)
        self.epsilon: Optional[float] = None if config.epsilon == "auto" else config.epsilon

    def measure(self, epoch: EpochRecord) -> float:
        current = self.context.snapshot(epoch.model, epoch.mask, self.distance.needs)
        return self.distance(current, self.context.dense)

    def check(self, epoch: EpochRecord) -> Verdict:
        start = time.perf_counter()
        distance = self.measure(epoch)
        if self.epsilon is None:  # the first check (epoch 0) sees the freshly pruned network
            self.epsilon = auto_threshold(self.context.noise.get(self.config.distance), distance)
        seconds = time.perf_counter() - start
        return consistency_verdict(distance, self.epsilon, epoch.val_acc, self.context.dense_best_val_acc, seconds)
