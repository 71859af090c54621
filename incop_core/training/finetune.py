"""Fine-tuning (iteration 0) bookkeeping: the flows the paper's criteria need, the dense network's own noise
under retraining for every consistency signal, and the plateau stop (docs/algorithms.md §1, §4.3–4.4)."""

from __future__ import annotations

import copy
import time
from typing import Callable, Optional

import numpy as np
from torch import nn

from incop_core.criteria import EpochRecord, Verdict
from incop_core.consistency.distances import DISTANCES, FEATURES, GRADIENTS, LOGITS, Snapshot
from incop_core.consistency.distances.connectivity import information_flow_vector
from incop_core.consistency.epsilon import auto_epsilon
from incop_core.pruning.masks import Mask, prunable_weights

ALL_NEEDS = frozenset({LOGITS, FEATURES, GRADIENTS})
PROBE_FLOWS = frozenset({FEATURES, GRADIENTS})
PLATEAU = "plateau"
PLATEAU_PP = 0.3  # the plateau check (docs/algorithms.md §1): validation gaining < 0.3 pp over the last 2 epochs


def reached_plateau(val_accs: list[float], plateau_pp: Optional[float]) -> bool:
    """Validation accuracy gained less than `plateau_pp` points over the last 2 epochs."""
    return (plateau_pp is not None and len(val_accs) >= 3
            and 100 * (max(val_accs[-2:]) - max(val_accs[:-2])) < plateau_pp)


def probe_flows(snapshot: Snapshot) -> dict[str, np.ndarray]:
    """The paper's IF and GF vectors measured on the probe set."""
    return {"if": information_flow_vector(snapshot.features), "gf": snapshot.gradients}


class FinetuneRecorder:
    """The fine-tuning 'criterion': keeps each epoch's streamed flows (and probe flows when `probe_every_epoch`,
    which only the paper's probe criterion with an auto epsilon needs); stops at the plateau."""

    def __init__(self, snapshot: Callable[[nn.Module, Mask, frozenset], Snapshot], plateau_pp: Optional[float],
                 probe_every_epoch: bool = False) -> None:
        self.snapshot, self.plateau_pp, self.probe_every_epoch = snapshot, plateau_pp, probe_every_epoch
        self.flows: list[dict[str, np.ndarray]] = []
        self.val_accs: list[float] = []

    def check(self, epoch: EpochRecord) -> Verdict:
        start = time.perf_counter()
        row = probe_flows(self.snapshot(epoch.model, epoch.mask, PROBE_FLOWS)) if self.probe_every_epoch else {}
        self.flows.append({**row, **{f"{signal}-stream": v for signal, v in (epoch.stream or {}).items()}})
        self.val_accs.append(epoch.val_acc)
        stop = reached_plateau(self.val_accs, self.plateau_pp)
        return Verdict(stop, PLATEAU if stop else None, flow_seconds=time.perf_counter() - start)

    def summary(self, best: int, reference: Snapshot) -> dict:
        """What iteration 0's record keeps: reference flows (probe flows from the best network's snapshot) and the
        paper's auto epsilons (None where a flow was not recorded every epoch)."""
        flows = {**self.flows[best - 1], **probe_flows(reference)}
        auto = {key: auto_epsilon([row[key] for row in self.flows], best) if key in self.flows[0] else None
                for key in flows}
        gain = 100 * (max(self.val_accs[-2:]) - max(self.val_accs[:-2])) if len(self.val_accs) >= 3 else None
        return {"reference": {key: v.tolist() for key, v in flows.items()}, "auto_epsilon": auto,
                "plateau_gain_pp": gain, "plateau": gain is not None and gain < PLATEAU_PP,
                "finetune_flows": [{k: v.tolist() for k, v in row.items()} for row in self.flows]}


class SettleCapture:
    """A criterion that never stops and keeps the prunable weights at its first check after a step: the dense network
    after one decision-check interval of the calibration's retraining (docs/algorithms.md §4.3)."""

    def __init__(self) -> None:
        self.weights: Optional[dict] = None

    def check(self, epoch: EpochRecord) -> Verdict:
        if self.weights is None and epoch.epoch > 0:
            self.weights = {n: w.detach().cpu().clone() for n, w in prunable_weights(epoch.model).items()}
        return Verdict(False)


def calibrate(model: nn.Module, reference: Snapshot, retrain: Callable[[], float],
              snapshot: Callable[[nn.Module, Mask, frozenset], Snapshot], mask: Mask, best_val_acc: float) -> dict:
    """The dense network's own noise under retraining: how far one retraining epoch (retraining learning rate, nothing
    pruned) moves it, per signal; the weights are restored afterwards. `retrain()` trains and returns validation
    accuracy."""
    state = copy.deepcopy(model.state_dict())
    val_acc = retrain()
    moved = snapshot(model, mask, ALL_NEEDS)
    model.load_state_dict(state)
    return {**{name: DISTANCES.get(name)(moved, reference) for name in DISTANCES.names()},
            "val_acc": abs(best_val_acc - val_acc)}
