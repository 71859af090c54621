"""The next prune decision (docs/algorithms.md §4.3): which surviving entries the next iteration would remove, and how
far two such decisions are apart. An intermediate iteration retrains only so that this decision is right, so its
retraining can stop once the decision no longer moves by more than a converged network's own retraining moves it.

Computing a decision needs no data pass: the schedule's counts (from the trajectory being followed, or the schedule
on the current weights) and the same magnitude ranking the next prune will use.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from incop_core.pruning.masks import Mask

Decide = Callable[[Mapping[str, torch.Tensor]], Mask]  # current weights -> the mask the next prune would leave


def removed(mask: Mask, next_mask: Mask) -> dict[str, torch.Tensor]:
    """Entries `mask` keeps and `next_mask` drops: the set the next prune removes."""
    return {name: keep & ~next_mask.tensors[name] for name, keep in mask.tensors.items()}


def decision_distance(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """Jaccard distance 1 - |A ∩ B| / |A ∪ B| between two removed sets (Early-Bird's mask distance, taken over the
    entries the next prune removes rather than over the whole network, so it does not shrink as sparsity grows);
    0 when both are empty."""
    inter = sum(int((a[n] & b[n]).sum()) for n in a)
    union = sum(int((a[n] | b[n]).sum()) for n in a)
    return 1.0 - inter / union if union else 0.0


def decision_noise(decide: Decide, dense: Mapping[str, torch.Tensor], moved: Mapping[str, torch.Tensor],
                   mask: Mask) -> float:
    """How far one check interval of retraining moves the decision of a network with nothing left to recover: the same
    decision (same survivors `mask`, same counts) taken on the dense network's weights before and after it retrained
    that long. Retraining that moves the pruned network's decision no more than this moves it only by noise."""
    return decision_distance(removed(mask, decide(dense)), removed(mask, decide(moved)))


# decision checks per epoch in intermediate iterations: at most 1/8 epoch retrained too long
SETTLE_CHECKS_PER_EPOCH = 8


def settle_steps(steps_per_epoch: int) -> int:
    """Optimiser steps between two checks of the next prune decision."""
    return max(1, -(-steps_per_epoch // SETTLE_CHECKS_PER_EPOCH))
