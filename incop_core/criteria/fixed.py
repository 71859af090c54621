"""Fixed epochs: retrain exactly max_epochs every iteration (the LTH and SAP baselines)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from . import CRITERIA, CriterionContext, EpochRecord, Verdict


class FixedEpochsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["fixed-epochs"] = "fixed-epochs"


@CRITERIA.register("fixed-epochs", FixedEpochsConfig)
class FixedEpochs:
    def __init__(self, config: FixedEpochsConfig, context: CriterionContext) -> None:
        self.config = config

    def check(self, epoch: EpochRecord) -> Verdict:
        return Verdict(stop=False)
