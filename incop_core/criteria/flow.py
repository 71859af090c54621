"""InCoP: stop once the information or gradient flow is back near the dense network's (SPEC 3.5)."""

from __future__ import annotations

import time
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from ..flows import flow_distance
from . import ACCURACY, CRITERIA, FLOW, CriterionContext, EpochRecord, Verdict


class IfConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["incop-if"] = "incop-if"
    epsilon: float = Field(0.11, gt=0, description="Stop when ||IF_t - IF*||_2 falls below this.")
    check_every: int = Field(1, ge=1, description="Measure the flow after every this many epochs.")


class GfConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["incop-gf"] = "incop-gf"
    epsilon: float = Field(0.5, gt=0, description="Stop when ||GF_t - GF*||_2 falls below this (model-dependent; see the distance curve).")
    check_every: int = Field(1, ge=1, description="Measure the flow after every this many epochs.")


SIGNALS = {"incop-if": "if", "incop-gf": "gf"}


class FlowConsistency:
    """Flow distance under epsilon, or dense-best validation accuracy, stops retraining."""

    def __init__(self, config: Union[IfConfig, GfConfig], context: CriterionContext) -> None:
        self.config, self.context = config, context
        self.signal = SIGNALS[config.kind]

    def check(self, epoch: EpochRecord) -> Verdict:
        if epoch.epoch % self.config.check_every:
            return Verdict(stop=False)
        start = time.perf_counter()
        current = self.context.measure(self.signal, epoch.model, epoch.mask)
        distance = flow_distance(current, self.context.reference[self.signal])
        seconds = time.perf_counter() - start
        if distance < self.config.epsilon:
            return Verdict(True, FLOW, distance, seconds)
        if epoch.val_acc >= self.context.dense_best_val_acc:
            return Verdict(True, ACCURACY, distance, seconds)
        return Verdict(False, None, distance, seconds)


CRITERIA.register("incop-if", IfConfig)(FlowConsistency)
CRITERIA.register("incop-gf", GfConfig)(FlowConsistency)
