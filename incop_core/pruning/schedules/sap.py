"""SAP: the PQ-index schedule of Diao et al. 2023 (docs/algorithms.md §3.2)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from incop_core.pruning.magnitude import survivors
from incop_core.foundations.plugins import KIND_FIELD
from incop_core.pruning.schedules.base import SCHEDULES, PruneState, Schedule


class SapConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="SAP (PQ index)")  # the tab label in the Prefect UI
    kind: Literal["sap"] = Field("sap", json_schema_extra=KIND_FIELD)
    p: float = Field(0.5, gt=0, description="Lower norm order of the PQ index (0 < p < q); 1.0 with q=2 is the "
                                            "aggressive preset.")
    q: float = Field(1.0, gt=0, description="Upper norm order of the PQ index.")
    eta_r: float = Field(0.0, ge=0, description="Slack eta_r on the lower bound r of weights to keep.")
    gamma: float = Field(1.0, gt=0, description="Step size gamma scaling the pruning ratio.")
    beta: float = Field(0.9, gt=0, lt=1, description="Largest share of survivors pruned in one iteration.")

    @model_validator(mode="after")
    def _p_below_q(self) -> "SapConfig":
        if self.p >= self.q:
            raise ValueError(f"SAP needs p < q (got p={self.p}, q={self.q})")
        return self


def pq_index(w: torch.Tensor, p: float, q: float) -> float:
    """PQI(w) = 1 - d^(1/q - 1/p) * ||w||_p / ||w||_q, computed in log space; 0 when d == 0."""
    d = w.numel()
    a = w.detach().double().abs()
    if d == 0 or not torch.any(a > 0):
        return 0.0
    a = a[a > 0]  # zeros add nothing to either norm
    log_norm_p = torch.logsumexp(p * a.log(), 0).item() / p
    log_norm_q = torch.logsumexp(q * a.log(), 0).item() / q
    return max(0.0, 1.0 - math.exp((1 / q - 1 / p) * math.log(d) + log_norm_p - log_norm_q))


def sap_prune_count(w: torch.Tensor, cfg: SapConfig) -> int:
    """c = floor(d * clamp(gamma * (1 - r/d), 0, beta)) with r the PQ-index lower bound on weights to keep."""
    d = w.numel()
    if d == 0:
        return 0
    pqi = pq_index(w, cfg.p, cfg.q)
    r = math.ceil(d * (1 + cfg.eta_r) ** (-cfg.q / (cfg.q - cfg.p)) * (1 - pqi) ** (cfg.q * cfg.p / (cfg.q - cfg.p)))
    return math.floor(d * min(max(cfg.gamma * (1 - r / d), 0.0), cfg.beta))


@SCHEDULES.register("sap", SapConfig)
class PQIndex(Schedule):
    def __init__(self, config: SapConfig) -> None:
        self.config = config

    def prune_counts(self, state: PruneState) -> dict[str, int]:
        groups = survivors(state.weights, state.mask, state.scope, state.groups)
        return {group: sap_prune_count(values, self.config) for group, values in groups.items()}
