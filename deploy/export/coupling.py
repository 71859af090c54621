"""Which channels compaction may remove: torch-pruning's dependency graph, read group by group.

A group is every layer coupled to one root's output channels (through BatchNorm, residual
additions, flattening). A root channel is dead when every Conv/Linear that writes it has an
all-zero filter there; the group's readers are the Conv/Linear layers that take it as input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning import ops

from incop_core.pruning.groups import index_tables

WEIGHTED = (ops.OPTYPE.CONV, ops.OPTYPE.LINEAR, ops.OPTYPE.DEPTHWISE_CONV)
PASS_THROUGH = (ops.OPTYPE.BN, ops.OPTYPE.ELEMENTWISE, ops.OPTYPE.RESHAPE, ops.OPTYPE.CONCAT, ops.OPTYPE.SPLIT,
                ops.OPTYPE.SLICE, ops.OPTYPE.EXPAND, ops.OPTYPE.UNBIND)


@dataclass
class GroupPlan:
    """One coupled group: its dead root channels, who writes and reads them, and the carrier kept."""

    root: nn.Module
    handler: Callable
    channels: int
    dead: list[int]
    writers: dict[nn.Module, dict[int, list[int]]]  # layer -> {root index: its output channels}
    readers: dict[nn.Module, dict[int, list[int]]]  # layer -> {root index: its input channels (or features)}
    carrier: Optional[int] = None             # a dead channel kept to carry the others' constants

    def removed(self) -> list[int]:
        """Root channels to remove: the dead ones but the carrier, never every channel of the group."""
        gone = [r for r in self.dead if r != self.carrier]
        return gone[1:] if len(gone) == self.channels else gone

    def local(self, layer: nn.Module, roots: list[int], write: bool = False) -> list[int]:
        table = (self.writers if write else self.readers)[layer]
        return [index for root in roots for index in table.get(root, [])]


def zero_filters(layer: nn.Module) -> set[int]:
    """Output channels of a Conv/Linear whose weights are all exactly zero."""
    rows = layer.weight.detach().reshape(layer.weight.shape[0], -1)
    return set(torch.nonzero((rows == 0).all(dim=1)).flatten().tolist())


def _dead(group: tp.Group, graph: tp.DependencyGraph, writers: dict) -> list[int]:
    """Root indices dead in every writer; none when a writer is a layer type compaction does not know."""
    if any(graph.is_out_channel_pruning_fn(i.dep.handler) and i.dep.target.type not in WEIGHTED + PASS_THROUGH
           for i in group):
        return []
    dead = set(group[0].root_idxs)
    for layer, table in writers.items():
        zeros = zero_filters(layer)
        dead &= {root for root, local in table.items() if all(i in zeros for i in local)}
    return sorted(dead)


def plan_groups(model: nn.Module, example: torch.Tensor, keep: list[nn.Module]):
    """The dependency graph and one GroupPlan per group with dead channels; `keep` layers' outputs stay."""
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example[:1], verbose=False)
    plans = []
    for group in graph.get_all_groups(ignored_layers=keep, root_module_types=(nn.Conv2d, nn.Linear)):
        writers = index_tables(group, graph, write=True)
        dead = _dead(group, graph, writers)
        if dead:
            dep = group[0].dep
            plans.append(GroupPlan(dep.target.module, dep.handler, len(set(group[0].root_idxs)), dead, writers,
                                   index_tables(group, graph, write=False)))
    return graph, [p for p in plans if p.removed()]


def follower(graph: tp.DependencyGraph, layer: nn.Module) -> Optional[nn.BatchNorm2d]:
    """The BatchNorm2d that alone reads `layer`'s output, if any."""
    outputs = graph.module2node[layer].outputs
    only = outputs[0].module if len(outputs) == 1 else None
    return only if type(only) is nn.BatchNorm2d and only.track_running_stats else None
