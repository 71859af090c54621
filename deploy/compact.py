"""Compaction (SPEC 3.7): turn all-zero filters into a smaller dense network with torch-pruning.

An output channel is removed when every layer that writes it (through residual additions, all of
them) has an all-zero filter there; torch-pruning's dependency graph finds those couplings and
removes the channel from every coupled Conv/Linear/BatchNorm. What the removed channel still fed
forward (a constant: BN shift or bias) is folded into the consumers (see layers.py), so the
compacted model computes what the masked model computes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning import ops

from .errors import ExportFailed
from .layers import fold_constant

WEIGHTED = (ops.OPTYPE.CONV, ops.OPTYPE.LINEAR, ops.OPTYPE.DEPTHWISE_CONV)
PASS_THROUGH = (ops.OPTYPE.BN, ops.OPTYPE.ELEMENTWISE, ops.OPTYPE.RESHAPE, ops.OPTYPE.CONCAT, ops.OPTYPE.SPLIT,
                ops.OPTYPE.SLICE, ops.OPTYPE.EXPAND, ops.OPTYPE.UNBIND)


@dataclass
class Compaction:
    """The compacted model and what was done to reach it."""

    model: nn.Module
    removed: dict[str, int] = field(default_factory=dict)   # root layer -> output channels removed
    folded: dict[str, str] = field(default_factory=dict)    # consumer layer -> "bias" or "map"

    @property
    def channels_removed(self) -> int:
        return sum(self.removed.values())


def zero_filters(layer: nn.Module) -> set[int]:
    """Output channels of a Conv/Linear whose weights are all exactly zero."""
    rows = layer.weight.detach().reshape(layer.weight.shape[0], -1)
    return set(torch.nonzero((rows == 0).all(dim=1)).flatten().tolist())


def removable(group: tp.Group, graph: tp.DependencyGraph) -> list[int]:
    """Root indices dead in every layer that writes them; one channel is always kept."""
    roots = group[0].root_idxs
    dead = set(roots)
    for item in group:
        dep, idxs = item
        if not graph.is_out_channel_pruning_fn(dep.handler):
            continue
        kind = dep.target.type
        if kind in WEIGHTED:
            zeros = zero_filters(dep.target.module)
            dead &= {root for local, root in zip(idxs, item.root_idxs) if local in zeros}
        elif kind not in PASS_THROUGH:
            return []  # an unknown producer with its own parameters: leave the group alone
    if len(dead) == len(set(roots)):
        dead.discard(min(dead))
    return sorted(dead)


def _consumers(group: tp.Group, graph: tp.DependencyGraph, chosen: set[int], out: bool) -> dict[nn.Module, list[int]]:
    """Weighted layers of the group with the local indices that go (out- or in-channels)."""
    found: dict[nn.Module, list[int]] = {}
    for item in group:
        dep = item.dep
        if dep.target.type in WEIGHTED and graph.is_out_channel_pruning_fn(dep.handler) == out:
            local = [i for i, root in zip(item.idxs, item.root_idxs) if root in chosen]
            found.setdefault(dep.target.module, []).extend(local)
    return found


def _capture_inputs(model: nn.Module, layers: list[nn.Module], example: torch.Tensor) -> dict[nn.Module, torch.Tensor]:
    captured: dict[nn.Module, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out: captured.__setitem__(mod, inp[0].detach())) for m in layers]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return captured


def contribution(layer: nn.Module, x: torch.Tensor, lost: list[int], name: str) -> torch.Tensor:
    """What the input channels `lost` add to `layer`'s output; they must be constant across the batch."""
    only = torch.zeros_like(x)
    only[:, lost] = x[:, lost]
    if float((only - only[:1]).abs().max()) > 1e-6 * (1.0 + float(only.abs().max())):
        raise ExportFailed(f"cannot compact layer {name}: the channels it would lose vary with the input; "
                           f"use `incop export --no-compact`")
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            return nn.functional.linear(only[:1], layer.weight)[0]
        return layer._conv_forward(only[:1], layer.weight, None)[0]


def _plan(model: nn.Module, example: torch.Tensor, output_layer: nn.Module):
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example[:1], verbose=False)
    plan = []
    for group in graph.get_all_groups(ignored_layers=[output_layer], root_module_types=(nn.Conv2d, nn.Linear)):
        chosen = removable(group, graph)
        if chosen:
            dep = group[0].dep
            plan.append((dep.target.module, dep.handler, chosen, _consumers(group, graph, set(chosen), out=False),
                         _consumers(group, graph, set(chosen), out=True)))
    return graph, plan


def _follower(graph: tp.DependencyGraph, layer: nn.Module):
    """The BatchNorm2d that alone reads `layer`'s output, if any."""
    outputs = graph.module2node[layer].outputs
    only = outputs[0].module if len(outputs) == 1 else None
    return only if type(only) is nn.BatchNorm2d and only.track_running_stats else None


def compact(model: nn.Module, example: torch.Tensor) -> Compaction:
    """A compacted copy of `model` (eval mode); `example` is a batch of at least two real inputs."""
    model = copy.deepcopy(model).eval()
    names = {m: n for n, m in model.named_modules()}
    output_layer = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
    graph, plan = _plan(model, example, output_layer)
    lost_in: dict[nn.Module, list[int]] = {}
    lost_out: dict[nn.Module, set[int]] = {}
    for *_, consumers, producers in plan:
        for layer, lost in consumers.items():
            lost_in.setdefault(layer, []).extend(lost)
        for layer, lost in producers.items():
            lost_out.setdefault(layer, set()).update(lost)
    inputs = _capture_inputs(model, list(lost_in), example)
    shifts = {layer: contribution(layer, inputs[layer], lost, names[layer]) for layer, lost in lost_in.items()}
    followers = {layer: _follower(graph, layer) for layer in lost_in}
    for root, handler, chosen, *_ in plan:
        graph.get_pruning_group(root, handler, chosen).prune()
    result = Compaction(model, removed={names[root]: len(chosen) for root, _, chosen, *_ in plan})
    for layer, shift in shifts.items():
        kept = [c for c in range(shift.shape[0]) if c not in lost_out.get(layer, set())]
        if float(shift.abs().max()) > 0:
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
