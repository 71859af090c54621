"""Fixed epochs: retrain exactly max_epochs every iteration (the LTH and SAP baselines), or exactly `epochs`."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import ConfigDict, Field, NonNegativeFloat

from incop_core.foundations.plugins import KIND_FIELD
from incop_core.criteria.base import (CRITERIA, Criterion, CriterionContext, CriterionSettings, EpochRecord,
                                      Verdict)


class FixedEpochsConfig(CriterionSettings):
    model_config = ConfigDict(extra="forbid", title="Fixed epochs (baseline)")  # the tab label in the Prefect UI
    kind: Literal["fixed-epochs"] = Field("fixed-epochs", json_schema_extra=KIND_FIELD)
    epochs: Optional[NonNegativeFloat] = Field(
        None, description="Retrain exactly this many epochs per iteration (fractional: whole steps), instead of "
                          "prune.max_epochs; the budget-matched baseline sets it to InCoP's mean.")
    intermediate_epochs: Optional[NonNegativeFloat] = Field(
        None, description="Epochs of every iteration but the last (None: as the others); 0 with the last one retrained "
                          "in full is the final-only baseline.")

    def retrain_budget(self, max_epochs: int, final: bool) -> float:
        """Retraining epochs of one iteration."""
        full = max_epochs if self.epochs is None else self.epochs
        return full if final or self.intermediate_epochs is None else self.intermediate_epochs


@CRITERIA.register("fixed-epochs", FixedEpochsConfig)
class FixedEpochs(Criterion):
    def __init__(self, config: FixedEpochsConfig, context: CriterionContext) -> None:
        self.config = config

    def check(self, epoch: EpochRecord) -> Verdict:
        return Verdict(stop=False)
