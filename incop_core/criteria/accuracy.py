"""Accuracy: stop once validation accuracy is back at the dense network's best."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from . import ACCURACY, CRITERIA, CriterionContext, EpochRecord, Verdict


class AccuracyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["accuracy"] = "accuracy"


@CRITERIA.register("accuracy", AccuracyConfig)
class DenseAccuracy:
    def __init__(self, config: AccuracyConfig, context: CriterionContext) -> None:
        self.target = context.dense_best_val_acc

    def check(self, epoch: EpochRecord) -> Verdict:
        return Verdict(stop=True, reason=ACCURACY) if epoch.val_acc >= self.target else Verdict(stop=False)
