"""EGP: entropy-guided pruning (Liao et al. 2023; docs/algorithms.md §3.3): prune low-entropy layers first, whole
ones when their budget covers them, so unstructured pruning removes depth."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from incop_core.pruning.entropy import layer_entropies, water_fill
from incop_core.pruning.magnitude import STRUCTURED
from incop_core.foundations.errors import ConfigError
from incop_core.foundations.plugins import KIND_FIELD
from incop_core.pruning.schedules.base import SCHEDULES, PruneState, Schedule


class EgpConfig(BaseModel):
    # the tab label in the Prefect UI
    model_config = ConfigDict(extra="forbid", title="EGP (entropy-guided, removes layers)")
    kind: Literal["egp"] = Field("egp", json_schema_extra=KIND_FIELD)
    budget_share: float = Field(0.5, gt=0, lt=1, description="B = this share of the survivors of layers with H_l > 0.")


@SCHEDULES.register("egp", EgpConfig)
class EntropyGuided(Schedule):
    probes_data = True  # its counts need a pass over the probe set (the next-decision check holds them)

    def __init__(self, config: EgpConfig) -> None:
        self.config = config

    def prune_counts(self, state: PruneState) -> dict[str, int]:
        """Per layer: budget_l = B * softmax(S / (H_l * m_l)) over the wait list, water-filled."""
        if state.model is None or state.probe is None:
            raise ConfigError("the egp schedule needs the model and a probe set")
        entropy = layer_entropies(state.model, state.probe)
        if not entropy:
            raise ConfigError("the egp schedule ranks layers by the entropy of their ReLU outputs, and this model has "
                              "no nn.ReLU module (EfficientNet uses SiLU, for one); use prune.schedule lth or sap")
        alive = {n: state.weights[n][state.mask.tensors[n].to(state.weights[n].device)] for n in entropy}
        wait = {n: entropy[n] * float(alive[n].abs().mean()) for n in entropy if entropy[n] > 0 and alive[n].numel()}
        survivors = {n: alive[n].numel() for n in wait}
        budget = self.config.budget_share * sum(survivors.values())
        total = sum(wait.values())  # S = sum of H_l * m_l over the wait list
        scores = {n: total / hm for n, hm in wait.items() if hm > 0}
        counts = water_fill(budget, scores, survivors)
        if state.scope in STRUCTURED:
            sizes = {n: state.weights[n][0].numel() for n in counts}
            return {n: -(-c // sizes[n]) for n, c in counts.items()}
        return counts
