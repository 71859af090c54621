"""Compaction (docs/algorithms.md §5.2): turn all-zero filters into a smaller dense network with torch-pruning.

An output channel is removed when every layer that writes it (through residual additions, all of
them) has an all-zero filter there; torch-pruning's dependency graph finds those couplings and
removes the channel from every coupled Conv/Linear/BatchNorm (coupling.py). What the removed
channels still fed forward, a constant, is folded into their readers (fold.py), so the compacted
model computes what the masked model computes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .coupling import follower, plan_groups
from .fold import fold_group
from .layers import capture_inputs, fold_constant


@dataclass
class Compaction:
    """The compacted model and what was done to reach it."""

    model: nn.Module
    removed: dict[str, int] = field(default_factory=dict)   # root layer -> output channels removed
    carriers: dict[str, int] = field(default_factory=dict)  # root layer -> dead channel kept as a carrier
    folded: dict[str, str] = field(default_factory=dict)    # reader -> "bias", "carrier channel" or "map..."

    @property
    def channels_removed(self) -> int:
        return sum(self.removed.values())


def compact(model: nn.Module, example: torch.Tensor) -> Compaction:
    """A compacted copy of `model` (eval mode); `example` is a batch of at least two real inputs."""
    model = copy.deepcopy(model).eval()
    names = {m: n for n, m in model.named_modules()}
    output_layer = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
    graph, plans = plan_groups(model, example, keep=[output_layer])
    readers = list({r: None for p in plans for r in p.readers})
    inputs = {m: x[0] for m, x in capture_inputs(model, readers, example).items()}
    result, pending = Compaction(model), {}
    for plan in plans:
        fold_group(plan, inputs, names, pending, result.folded)
    followers = {layer: follower(graph, layer) for layer in pending}
    lost_out: dict[nn.Module, set[int]] = {}
    for plan in plans:
        removed = plan.removed()
        for writer in plan.writers:
            lost_out.setdefault(writer, set()).update(plan.local(writer, removed, write=True))
        graph.get_pruning_group(plan.root, plan.handler, removed).prune()
        result.removed[names[plan.root]] = len(removed)
        if plan.carrier is not None:
            result.carriers[names[plan.root]] = plan.carrier
    for layer, shift in pending.items():
        kept = [c for c in range(shift.shape[0]) if c not in lost_out.get(layer, set())]
        result.folded[names[layer]] = fold_constant(layer, shift[kept], followers[layer])
    result.model.eval()
    return result


def max_abs_difference(a: nn.Module, b: nn.Module, images: torch.Tensor, batch: int = 256) -> float:
    """Largest absolute difference between two models' outputs over `images` (float32, eval mode)."""
    worst = 0.0
    a.eval(), b.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch):
            chunk = images[start:start + batch]
            worst = max(worst, float((a(chunk) - b(chunk)).abs().max()))
    return worst
