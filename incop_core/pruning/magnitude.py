"""Which weights to prune: one magnitude function shared by every schedule (docs/algorithms.md §2).

Schedules answer "how many" as counts keyed by group: "*" means one ranking over the whole
scope (global weights, or all filters), a layer name means a ranking inside that layer (layer,
neuron, and layer-filter: whole filters ranked inside each layer, which keeps at least one), or a group's root
layer (group: coupled channel sets from torch-pruning's dependency graph, groups.py).
Only surviving weights are ranked and exactly the asked count is pruned (ties by position).
"""

from __future__ import annotations

from typing import Literal, Mapping, Optional, Sequence

import torch

from incop_core.pruning.groups import ChannelGroup, group_survivors, prune_groups
# alive_filters is part of this module's interface
from incop_core.pruning.masks import Mask, alive_filters  # noqa: F401

Scope = Literal["global", "layer", "neuron", "filter", "layer-filter", "group"]
SCOPES: tuple[str, ...] = ("global", "layer", "neuron", "filter", "layer-filter", "group")
STRUCTURED: tuple[str, ...] = ("filter", "layer-filter", "group")  # whole output channels; counts are filters
PER_LAYER_FILTERS: tuple[str, ...] = ("layer-filter", "group")  # each layer (group) keeps a multiple of round_to
ALL = "*"


def filter_layers(weights: Mapping[str, torch.Tensor]) -> list[str]:
    """Layers whose output channels may be removed: all but the last (its outputs are the classes)."""
    return list(weights)[:-1]


def filter_norms(weight: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """L2 norm of each output channel's (masked) filter."""
    return (weight.detach() * keep).reshape(weight.shape[0], -1).norm(dim=1).float().cpu()


def survivors(weights: Mapping[str, torch.Tensor], mask: Mask, scope: str,
              groups: Optional[Sequence[ChannelGroup]] = None) -> dict[str, torch.Tensor]:
    """The values a schedule measures, per group: surviving weights, surviving filters' norms, or surviving channels'
    group importance (group scope; without `groups` it counts each layer's filters, which is all a trajectory needs)."""
    if scope == "group" and groups is not None:
        return group_survivors(weights, mask, list(groups))
    if scope in STRUCTURED:
        per_layer = {
            n: filter_norms(weights[n], mask.tensors[n])[alive_filters(mask.tensors[n])] for n in filter_layers(weights)
        }
    else:
        per_layer = {n: w.detach().cpu().float()[mask.tensors[n]] for n, w in weights.items()}
    if scope in ("global", "filter"):
        return {ALL: torch.cat(list(per_layer.values())) if per_layer else torch.zeros(0)}
    return per_layer


def _smallest(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the `count` smallest scores (inf marks already-pruned entries), ties by position."""
    count = max(0, min(count, int(torch.isfinite(scores).sum())))
    return torch.argsort(scores, stable=True)[:count]


def _prune_unstructured(weights, keep: dict[str, torch.Tensor], names: list[str], count: int) -> None:
    scores = torch.cat([_scores(weights[n], keep[n]).flatten() for n in names])
    flat = torch.cat([keep[n].flatten() for n in names])
    flat[_smallest(scores, count)] = False
    for name, chunk in zip(names, torch.split(flat, [keep[n].numel() for n in names])):
        keep[name] = chunk.reshape(keep[name].shape)


def _scores(weight: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    scores = weight.detach().abs().float().cpu()
    return torch.where(keep, scores, torch.full_like(scores, float("inf")))


def _prune_neurons(weight: torch.Tensor, keep: torch.Tensor, count: int) -> torch.Tensor:
    """Prune the same fraction of each output row's survivors, ranked inside the row."""
    alive = int(keep.sum())
    rows = keep.reshape(keep.shape[0], -1).clone()
    per_row = torch.floor(rows.sum(dim=1) * (count / max(alive, 1))).long()
    order = torch.argsort(_scores(weight, keep).reshape(rows.shape), dim=1, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(rows.shape[1]).expand_as(order).contiguous())
    rows &= rank >= per_row[:, None]
    return rows.reshape(keep.shape)


def _prune_filters(weights, keep: dict[str, torch.Tensor], names: list[str], count: int) -> None:
    """Remove whole output channels, never the last live one of a layer."""
    norms, owners = [], []
    for name in names:
        layer_norms = filter_norms(weights[name], keep[name])
        alive = alive_filters(keep[name])
        layer_norms[~alive] = float("inf")
        if int(alive.sum()) > 0:
            layer_norms[torch.argmax(torch.where(alive, layer_norms, torch.tensor(-1.0)))] = float("inf")
        norms.append(layer_norms)
        owners += [(name, i) for i in range(len(layer_norms))]
    for index in _smallest(torch.cat(norms), count).tolist():
        name, channel = owners[index]
        keep[name][channel] = False


def round_filter_counts(counts: Mapping[str, int], mask: Mask, multiple: int, nearest: bool = False) -> dict[str, int]:
    """Per-layer filter counts adjusted so every layer keeps a multiple of `multiple` filters (`layer-filter` scope).

    The kept count the schedule asked for is rounded down to a multiple (`nearest`: to the nearest one, halves up, at
    most what is alive), but never below `multiple`, and a layer with no more than `multiple` live filters keeps what
    it has. CPU kernels run channel counts in SIMD blocks (8 floats with AVX2), so 17 filters cost about what 24 do:
    rounding turns removed filters into removed latency.
    """
    rounded = {}
    for group, count in counts.items():
        alive = int(alive_filters(mask.tensors[group]).sum())
        keep = alive - min(max(count, 0), alive)
        blocks = (2 * keep + multiple) // (2 * multiple) if nearest else keep // multiple
        rounded[group] = alive - (min(alive, max(multiple, blocks * multiple)) if alive > multiple else alive)
    return rounded


def prune(weights: Mapping[str, torch.Tensor], mask: Mask, counts: Mapping[str, int], scope: str,
          groups: Optional[Sequence[ChannelGroup]] = None) -> Mask:
    """Return a new, smaller mask pruning `counts` (weights, filters, or a group's channels) by magnitude."""
    keep = {name: t.clone() for name, t in mask.tensors.items()}
    if scope == "group":
        if groups is None:
            raise ValueError("group scope prunes coupled channel groups: pass the model's groups "
                             "(groups.channel_groups)")
        prune_groups(weights, keep, mask, list(groups), counts)
        return Mask(keep)
    for group, count in counts.items():
        if count <= 0:
            continue
        if scope in STRUCTURED:
            _prune_filters(weights, keep, filter_layers(weights) if group == ALL else [group], count)
        elif scope == "neuron" and group != ALL:
            keep[group] = _prune_neurons(weights[group], keep[group], count)
        else:
            _prune_unstructured(weights, keep, list(weights) if group == ALL else [group], count)
    return Mask(keep)
