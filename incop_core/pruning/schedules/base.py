"""How much to prune: a schedule answers, given the current state, how many weights per group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import torch

from incop_core.pruning.masks import Mask
from incop_core.foundations.plugins import Registry


@dataclass(frozen=True)
class PruneState:
    weights: Mapping[str, torch.Tensor]  # trained weights at the end of the previous iteration
    mask: Mask
    scope: str
    iteration: int
    model: Optional[torch.nn.Module] = None  # the trained model, for schedules that probe it
    probe: Optional[Any] = None  # callable yielding probe batches, for schedules that probe
    groups: Optional[Sequence[Any]] = None  # the model's coupled channel groups (group scope, groups.ChannelGroup)


class Schedule:
    """A built schedule: `prune_counts` says how many entries each group loses this iteration; `probes_data` is true
    for one whose counts need a pass over the probe set (the next-decision check then holds them)."""

    probes_data: bool = False

    def prune_counts(self, state: PruneState) -> dict[str, int]:
        """Counts to prune per group: "*" for one ranking over the scope, or per layer name."""
        raise NotImplementedError


SCHEDULES: Registry[Schedule] = Registry("schedule")
