"""Coupled channel groups for `prune.scope: group` (docs/algorithms.md §2.3), read from torch-pruning's dependency
graph.

A group is every layer one channel set touches: the convs and linears that write it (a residual stream has several,
a depthwise conv writes what it reads), the BatchNorms on the way, and the layers that read it. Pruning channel c
of a group masks c in every writer and every reader at once, so compaction (deploy/export/compact.py) finds it dead
in all of them and removes it; a channel pruned in one layer only would be kept alive by the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from incop_core.foundations.errors import ConfigError
from incop_core.pruning.masks import Mask, alive_filters, prunable_weights

@dataclass(frozen=True)
class Member:
    """One layer's share of a group: its own indices (weight rows or columns) and the root channel each belongs to."""

    local: torch.Tensor  # long, flat
    owner: torch.Tensor  # long, same length: root channel of each local index

    def of(self, channels: torch.Tensor) -> torch.Tensor:
        return self.local[torch.isin(self.owner, channels)]


@dataclass(frozen=True)
class ChannelGroup:
    """One coupled channel set, keyed by the weight name of its root layer."""

    root: str
    channels: int
    writers: dict[str, Member]  # output channels (dim 0)
    readers: dict[str, Member]  # input channels (dim 1); depthwise and grouped readers are covered by their writer rows

    def alive(self, mask: Mask) -> torch.Tensor:
        """Root channels with any surviving weight in the root's filter."""
        return alive_filters(mask.tensors[self.root])

    def importance(self, weights: Mapping[str, torch.Tensor], mask: Mask) -> torch.Tensor:
        """L2 norm, per root channel, over every masked weight of the group that touches it."""
        total = torch.zeros(self.channels)
        for members, dim in ((self.writers, 0), (self.readers, 1)):
            for name, member in members.items():
                squared = (weights[name].detach().float().cpu() * mask.tensors[name]).pow(2)
                per_index = squared.transpose(0, dim).reshape(squared.shape[dim], -1).sum(dim=1)
                total.index_add_(0, member.owner, per_index[member.local])
        return total.sqrt()

    def drop_(self, keep: dict[str, torch.Tensor], channels: list[int]) -> None:
        """Mask root `channels` in every writer (rows) and reader (columns) of the group."""
        chosen = torch.tensor(channels, dtype=torch.long)
        for name, member in self.writers.items():
            keep[name][member.of(chosen)] = False
        for name, member in self.readers.items():
            keep[name][:, member.of(chosen)] = False


def index_tables(group, graph, write: bool) -> dict[nn.Module, dict[int, list[int]]]:
    """Weighted layers of a torch-pruning group (writers, or readers) with root index -> the layer's own indices
    (shared with compaction, deploy/export/coupling.py)."""
    from torch_pruning import ops

    weighted = (ops.OPTYPE.CONV, ops.OPTYPE.LINEAR, ops.OPTYPE.DEPTHWISE_CONV)
    found: dict[nn.Module, dict[int, list[int]]] = {}
    for item in group:
        if item.dep.target.type in weighted and graph.is_out_channel_pruning_fn(item.dep.handler) == write:
            table = found.setdefault(item.dep.target.module, {})
            for local, root in zip(item.idxs, item.root_idxs):
                table.setdefault(root, []).append(local)
    return found


def _members(group, graph, names: dict, write: bool) -> dict[str, Member]:
    members = {}
    for module, table in index_tables(group, graph, write).items():
        if not write and getattr(module, "groups", 1) > 1:  # its weight has in/groups columns; its writer rows cover it
            continue
        pairs = [(local, root) for root, locals_ in table.items() for local in locals_]
        members[f"{names[module]}.weight"] = Member(torch.tensor([p[0] for p in pairs], dtype=torch.long),
                                                    torch.tensor([p[1] for p in pairs], dtype=torch.long))
    return members


def _grouped(module: nn.Module) -> bool:
    """A grouped conv that is not depthwise (RegNet, ResNeXt): its channels come in blocks; groups touching it stay."""
    groups = getattr(module, "groups", 1)
    return isinstance(module, nn.Conv2d) and 1 < groups and not (groups == module.in_channels == module.out_channels)


def channel_groups(model: nn.Module, example: torch.Tensor) -> list[ChannelGroup]:
    """The model's coupled groups, the classifier's outputs excepted; a model torch-pruning cannot trace is a
    sentence naming the other structured scope."""
    import torch_pruning as tp

    names = {m: n for n, m in model.named_modules()}
    weights = prunable_weights(model)
    classifier = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
    was = model.training
    try:
        graph = tp.DependencyGraph().build_dependency(model.eval(), example_inputs=example[:1], verbose=False)
        groups = []
        for group in graph.get_all_groups(ignored_layers=[classifier], root_module_types=(nn.Conv2d, nn.Linear)):
            if any(_grouped(item.dep.target.module) for item in group):  # torch-pruning cannot cut these consistently
                continue
            root = f"{names[group[0].dep.target.module]}.weight"
            writers = _members(group, graph, names, write=True)
            if root in weights and root in writers and all(n in weights for n in writers):
                readers = {n: m for n, m in _members(group, graph, names, write=False).items() if n in weights}
                groups.append(ChannelGroup(root, len(set(group[0].root_idxs)), writers, readers))
    except Exception as exc:
        raise ConfigError("prune.scope group needs torch-pruning to trace the model, which failed "
                          f"({type(exc).__name__}: {str(exc)[:200]}); use prune.scope layer-filter") from exc
    finally:
        model.train(was)
    if not groups:
        raise ConfigError("prune.scope group found no channel group to prune in this model (only the classifier has "
                          "outputs); use prune.scope layer or global")
    return groups


def group_survivors(weights: Mapping[str, torch.Tensor], mask: Mask,
                    groups: list[ChannelGroup]) -> dict[str, torch.Tensor]:
    """Per group (its root's weight name): the importance of each surviving channel."""
    return {g.root: g.importance(weights, mask)[g.alive(mask)] for g in groups}


def prune_groups(weights, keep: dict[str, torch.Tensor], mask: Mask, groups: list[ChannelGroup],
                 counts: Mapping[str, int]) -> None:
    """Prune `counts[root]` channels of each group, least important first, never its last live channel."""
    for group in groups:
        count = counts.get(group.root, 0)
        if count <= 0:
            continue
        alive = group.alive(mask)
        count = min(count, int(alive.sum()) - 1)
        if count <= 0:
            continue
        scores = torch.where(alive, group.importance(weights, mask), torch.tensor(float("inf")))
        group.drop_(keep, torch.argsort(scores, stable=True)[:count].tolist())
