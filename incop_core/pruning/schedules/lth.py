"""Lottery Ticket / IMP: prune a fixed fraction of the survivors each iteration (docs/algorithms.md §3.1)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from incop_core.pruning.magnitude import survivors
from incop_core.foundations.plugins import KIND_FIELD
from incop_core.pruning.schedules.base import SCHEDULES, PruneState, Schedule


class LthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="LTH (fixed ratio)")  # the tab label in the Prefect UI
    kind: Literal["lth"] = Field("lth", json_schema_extra=KIND_FIELD)
    fraction: float = Field(0.2, gt=0, lt=1, description="Share of the surviving weights pruned each iteration.")


@SCHEDULES.register("lth", LthConfig)
class FixedFraction(Schedule):
    def __init__(self, config: LthConfig) -> None:
        self.config = config

    def prune_counts(self, state: PruneState) -> dict[str, int]:
        groups = survivors(state.weights, state.mask, state.scope, state.groups)
        return {group: math.floor(self.config.fraction * values.numel()) for group, values in groups.items()}
