"""Fine-tuning (iteration 0) bookkeeping: every epoch's flows, the dense network's epoch-to-epoch noise of every
consistency signal, and the plateau stop (SPEC 3.5, 5)."""

from __future__ import annotations

import copy
import time
from typing import Callable, Optional

import numpy as np
from torch import nn

from .criteria import EpochRecord, Verdict
from .distances import DISTANCES, FEATURES, GRADIENTS, LOGITS, Snapshot
from .distances.connectivity import connectivity
from .epsilon import auto_epsilon, dense_noise
from .masks import Mask

ALL_NEEDS = frozenset({LOGITS, FEATURES, GRADIENTS})
PLATEAU = "plateau"
PLATEAU_PP = 0.3  # SPEC 5: validation gaining < 0.3 pp over the last 2 epochs


def reached_plateau(val_accs: list[float], plateau_pp: Optional[float]) -> bool:
    """Validation accuracy gained less than `plateau_pp` points over the last 2 epochs."""
    return plateau_pp is not None and len(val_accs) >= 3 and 100 * (max(val_accs[-2:]) - max(val_accs[:-2])) < plateau_pp


def information_flow_vector(snapshot: Snapshot) -> np.ndarray:
    """The paper's IF: the mean of each connectivity matrix."""
    return np.array([c.mean().item() for c in connectivity(snapshot.features)])


class FinetuneRecorder:
    """The fine-tuning 'criterion': keeps each epoch's flows and its distance to the epoch before; stops at the plateau."""

    def __init__(self, snapshot: Callable[[nn.Module, Mask, frozenset], Snapshot], plateau_pp: Optional[float]) -> None:
        self.snapshot, self.plateau_pp = snapshot, plateau_pp
        self.flows: list[dict[str, np.ndarray]] = []
        self.steps: list[Optional[dict[str, float]]] = []  # d(epoch e, epoch e-1) per distance; None for epoch 1
        self.val_accs: list[float] = []
        self.previous: Optional[Snapshot] = None

    def check(self, epoch: EpochRecord) -> Verdict:
        start = time.perf_counter()
        current = self.snapshot(epoch.model, epoch.mask, ALL_NEEDS)
        flows = {"if": information_flow_vector(current), "gf": current.gradients}
        self.flows.append({**flows, **{f"{signal}-stream": v for signal, v in (epoch.stream or {}).items()}})
        self.steps.append(None if self.previous is None else
                          {name: DISTANCES.get(name)(current, self.previous) for name in DISTANCES.names()})
        self.previous = current
        self.val_accs.append(epoch.val_acc)
        stop = reached_plateau(self.val_accs, self.plateau_pp)
        return Verdict(stop, PLATEAU if stop else None, flow_seconds=time.perf_counter() - start)

    def summary(self, best: int) -> dict:
        """What iteration 0's record keeps: reference flows, auto epsilons, and the noise of every signal."""
        reference = {key: flows.tolist() for key, flows in self.flows[best - 1].items()}
        auto = {key: auto_epsilon([row[key] for row in self.flows], best) for key in reference}
        accuracy_steps = [None] + [abs(b - a) for a, b in zip(self.val_accs, self.val_accs[1:])]
        noise = {name: dense_noise([s[name] if s else None for s in self.steps], best) for name in DISTANCES.names()}
        gain = 100 * (max(self.val_accs[-2:]) - max(self.val_accs[:-2])) if len(self.val_accs) >= 3 else None
        return {"reference": reference, "auto_epsilon": auto, "dense_steps": self.steps,
                "epoch_noise": {**noise, "val_acc": dense_noise(accuracy_steps, best)},
                "plateau_gain_pp": gain, "plateau": gain is not None and gain < PLATEAU_PP,
                "finetune_flows": [{k: v.tolist() for k, v in row.items()} for row in self.flows]}


def calibrate(model: nn.Module, reference: Snapshot, retrain: Callable[[], float],
              snapshot: Callable[[nn.Module, Mask, frozenset], Snapshot], mask: Mask, best_val_acc: float) -> dict:
    """The dense network's own noise under retraining: how far one retraining epoch (retraining learning rate, nothing
    pruned) moves it, per signal; the weights are restored afterwards. `retrain()` trains and returns validation accuracy."""
    state = copy.deepcopy(model.state_dict())
    val_acc = retrain()
    moved = snapshot(model, mask, ALL_NEEDS)
    model.load_state_dict(state)
    return {**{name: DISTANCES.get(name)(moved, reference) for name in DISTANCES.names()},
            "val_acc": abs(best_val_acc - val_acc)}
