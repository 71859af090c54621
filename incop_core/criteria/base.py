"""When to stop retraining: a criterion takes an epoch's record and answers stop or go.

The training function always stops at `max_epochs`; criteria may stop it earlier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

import numpy as np
from pydantic import BaseModel
from torch import nn

from incop_core.consistency.distances import Snapshot
from incop_core.pruning.masks import Mask
from incop_core.foundations.plugins import Registry

FLOW, ACCURACY, MAX_EPOCHS = "flow", "accuracy", "max-epochs"
SETTLED, PLATEAU = "settled", "plateau"  # the next prune decision stopped moving; the distance stopped improving


@dataclass(frozen=True)
class EpochRecord:
    epoch: float  # epochs trained so far in this iteration: 0 before any step, fractional at step checks
    measured_val_acc: Optional[float]  # None at mid-epoch checks until a criterion reads `val_acc`
    train_loss: float
    model: nn.Module
    mask: Mask
    stream: Optional[Mapping[str, np.ndarray]] = None  # IF/GF streamed from this epoch's passes
    validate: Optional[Callable[[], float]] = None  # one (memoised) validation pass, for mid-epoch checks

    @property
    def val_acc(self) -> float:
        """Validation accuracy: measured at epoch ends, computed on first read at a mid-epoch check."""
        if self.measured_val_acc is not None or self.validate is None:
            return self.measured_val_acc
        return self.validate()

    @property
    def at_epoch_end(self) -> bool:
        return float(self.epoch).is_integer()


@dataclass(frozen=True)
class Verdict:
    stop: bool
    reason: Optional[str] = None
    distance: Optional[float] = None
    flow_seconds: float = 0.0
    mask_distance: Optional[float] = None  # how far the next prune decision moved since the previous check


@dataclass(frozen=True)
class CriterionContext:
    dense_best_val_acc: float
    reference: Mapping[str, np.ndarray]  # the dense network's flows: "if", "gf", "if-stream", "gf-stream"
    measure: Callable[[str, nn.Module, Mask], np.ndarray]  # computes a signal on the probe set
    auto_epsilon: Mapping[str, float] = field(default_factory=dict)  # derived from fine-tuning, same keys
    snapshot: Optional[Callable[[nn.Module, Mask, frozenset], Snapshot]] = None  # probe measurement of a network
    dense: Optional[Snapshot] = None  # the dense network's snapshot at its best epoch (the reference)
    noise: Mapping[str, float] = field(default_factory=dict)  # the dense network's noise under one retraining epoch
    final: bool = True  # the last iteration (retrains the shipped network); False: retraining serves the next prune
    decide: Optional[Callable[[Mapping], Mask]] = None  # intermediate: weights -> the mask the next prune would leave
    decision_noise: Optional[float] = None  # intermediate: how far one check interval moves a converged decision
    probe_size: int = 0  # images in the probe set (the resolution of the output-consistency signals)
    max_epochs: int = 1  # the per-iteration retraining budget the run declares (prune.max_epochs)


def consistency_verdict(distance: float, epsilon: float, val_acc: float, dense_best_val_acc: float,
                        seconds: float) -> Verdict:
    """The InCoP rule: consistent (distance under epsilon), or validation accuracy back at the dense best, stops."""
    if distance < epsilon:
        return Verdict(True, FLOW, distance, seconds)
    if val_acc >= dense_best_val_acc:
        return Verdict(True, ACCURACY, distance, seconds)
    return Verdict(False, None, distance, seconds)


class CriterionSettings(BaseModel):
    """A criterion's config, and everything the runner asks of one: the plug-in protocol, stated once. A criterion
    overrides what it changes; the defaults retrain up to prune.max_epochs, check after every epoch (and at epoch 0),
    never mid-epoch, never the next prune decision, and need no flows or dense snapshot of their own."""

    def retrain_budget(self, max_epochs: int, final: bool) -> float:
        """Retraining epochs of one iteration at most (exactly, for a fixed budget)."""
        return max_epochs

    def check_every_epochs(self) -> int:
        return 1

    def steps_between_checks(self) -> Optional[int]:
        """Also check every this many optimiser steps (None: only at epoch ends)."""
        return None

    def checks_decision(self, final: bool) -> bool:
        """Does this iteration ask whether the next prune decision is settled (every eighth of an epoch)?"""
        return False

    def streams_flows(self) -> bool:
        """Are the flows estimated from the training epoch's own batches (else on the probe set)?"""
        return False

    def probes_flows_while_finetuning(self) -> bool:
        """Does iteration 0 measure probe flows after every fine-tuning epoch (to derive an auto epsilon)?"""
        return False

    def reference_distance(self) -> Optional[str]:
        """The distance whose dense-network snapshot this criterion compares against, if any."""
        return None


class Criterion:
    """A built criterion: `check` answers stop or go after each epoch; `epsilon` is its threshold, when it has one."""

    epsilon: Optional[float] = None

    def check(self, epoch: EpochRecord) -> Verdict:
        raise NotImplementedError


CRITERIA: Registry[Criterion] = Registry("criterion")
