"""Accuracy: stop once validation accuracy is back at the dense network's best (less its own noise)."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import ConfigDict, Field, NonNegativeFloat

from incop_core.foundations.plugins import KIND_FIELD
from incop_core.criteria.base import (ACCURACY, CRITERIA, Criterion, CriterionContext, CriterionSettings, EpochRecord,
                                      Verdict)

NOISE_KEY = "val_acc"  # the dense network's epoch-to-epoch validation-accuracy noise in the context


class AccuracyConfig(CriterionSettings):
    # the tab label in the Prefect UI
    model_config = ConfigDict(extra="forbid", title="Accuracy (back at the dense best)")
    kind: Literal["accuracy"] = Field("accuracy", json_schema_extra=KIND_FIELD)
    tolerance: Union[NonNegativeFloat, Literal["auto"]] = Field(
        0.0, description="Stop at the dense best validation accuracy minus this (a fraction, 0.005 = 0.5 pp); "
                         "'auto' uses the dense network's own epoch-to-epoch validation noise.")


@CRITERIA.register("accuracy", AccuracyConfig)
class DenseAccuracy(Criterion):
    def __init__(self, config: AccuracyConfig, context: CriterionContext) -> None:
        tolerance = (context.noise.get(NOISE_KEY) or 0.0) if config.tolerance == "auto" else config.tolerance
        self.target = context.dense_best_val_acc - tolerance

    def check(self, epoch: EpochRecord) -> Verdict:
        return Verdict(stop=True, reason=ACCURACY) if epoch.val_acc >= self.target else Verdict(stop=False)
