"""Coupled channel groups for `prune.scope: group` (docs/algorithms.md §2.3), read from torch-pruning's dependency graph.

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

from .errors import ConfigError
from .masks import Mask, prunable_weights

Table = dict[str, list[list[int]]]  # weight name -> per root channel, the layer's own indices


@dataclass(frozen=True)
class ChannelGroup:
    """One coupled channel set, keyed by the weight name of its root layer."""

    root: str
    writers: Table  # output channels (dim 0) per root channel
    readers: Table  # input channels (dim 1) per root channel; depthwise and grouped readers are covered by writers

    @property
    def channels(self) -> int:
        return len(self.writers[self.root])

    def alive(self, mask: Mask) -> torch.Tensor:
        """Root channels with any surviving weight in the root's filter."""
        keep = mask.tensors[self.root]
        return keep.reshape(keep.shape[0], -1).any(dim=1)

    def importance(self, weights: Mapping[str, torch.Tensor], mask: Mask) -> torch.Tensor:
        """L2 norm, per root channel, over every masked weight of the group that touches it."""
        total = torch.zeros(self.channels)
        for table, dim in ((self.writers, 0), (self.readers, 1)):
            for name, rows in table.items():
                squared = (weights[name].detach().float().cpu() * mask.tensors[name]).pow(2)
                per_index = squared.transpose(0, dim).reshape(squared.shape[dim], -1).sum(dim=1)
                total += torch.tensor([float(per_index[local].sum()) for local in rows])
        return total.sqrt()

    def drop_(self, keep: dict[str, torch.Tensor], channels: list[int]) -> None:
        """Mask root `channels` in every writer (rows) and reader (columns) of the group."""
        for name, rows in self.writers.items():
            keep[name][[i for c in channels for i in rows[c]]] = False
        for name, rows in self.readers.items():
            keep[name][:, [i for c in channels for i in rows[c]]] = False


def _table(group, graph, names: dict, write: bool) -> Table:
    from torch_pruning import ops

    weighted = (ops.OPTYPE.CONV, ops.OPTYPE.LINEAR, ops.OPTYPE.DEPTHWISE_CONV)
    found: dict[str, dict[int, list[int]]] = {}
    for item in group:
        module = item.dep.target.module
        if item.dep.target.type not in weighted or graph.is_out_channel_pruning_fn(item.dep.handler) != write:
            continue
        if not write and getattr(module, "groups", 1) > 1:  # its weight has in/groups columns; its writer rows cover it
            continue
        table = found.setdefault(f"{names[module]}.weight", {})
        for local, root in zip(item.idxs, item.root_idxs):
            table.setdefault(root, []).append(local)
    roots = sorted(set(group[0].root_idxs))
    return {name: [table.get(r, []) for r in roots] for name, table in found.items()}


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
            writers = _table(group, graph, names, write=True)
            if root in weights and root in writers and all(n in weights for n in writers):
                groups.append(ChannelGroup(root, writers, {n: r for n, r in _table(group, graph, names, False).items()
                                                           if n in weights}))
    except Exception as exc:
        raise ConfigError(f"prune.scope group needs torch-pruning to trace the model, which failed ({type(exc).__name__}: "
                          f"{str(exc)[:200]}); use prune.scope layer-filter") from exc
    finally:
        model.train(was)
    if not groups:
        raise ConfigError("prune.scope group found no channel group to prune in this model (only the classifier has "
                          "outputs); use prune.scope layer or global")
    return groups


def group_survivors(weights: Mapping[str, torch.Tensor], mask: Mask, groups: list[ChannelGroup]) -> dict[str, torch.Tensor]:
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
