"""InCoP: stop once the information or gradient flow is back near the dense network's (docs/algorithms.md §4.4)."""

from __future__ import annotations

import time
from typing import Literal, Union

from pydantic import ConfigDict, Field, PositiveFloat

from incop_core.consistency.signals import flow_distance
from incop_core.foundations.plugins import KIND_FIELD
from incop_core.criteria.base import (CRITERIA, Criterion, CriterionContext, CriterionSettings, EpochRecord, Verdict,
                                      consistency_verdict)

Epsilon = Union[PositiveFloat, Literal["auto"]]
Estimator = Literal["stream", "probe"]
ESTIMATOR_HELP = ("stream: accumulate the flow from the training epoch's own passes (no extra pass); "
                  "probe: extra passes over the fixed probe set (the reference estimator).")
AUTO_HELP = "; 'auto' derives it from how far the dense network's flow still moved while fine-tuning."


class FlowSettings(CriterionSettings):
    """What the two flow criteria's configs share: their `epsilon`, `check_every` and `estimator` answer the runner."""

    def check_every_epochs(self) -> int:
        return self.check_every

    def streams_flows(self) -> bool:
        return self.estimator == "stream"

    def probes_flows_while_finetuning(self) -> bool:
        return self.estimator == "probe" and self.epsilon == "auto"


class IfConfig(FlowSettings):
    model_config = ConfigDict(extra="forbid", title="InCoP-IF (information flow)")  # the tab label in the Prefect UI
    kind: Literal["incop-if"] = Field("incop-if", json_schema_extra=KIND_FIELD)
    epsilon: Epsilon = Field(0.11, description="Stop when ||IF_t - IF*||_2 falls below this" + AUTO_HELP)
    check_every: int = Field(1, ge=1, description="Measure the flow after every this many epochs.")
    estimator: Estimator = Field("stream", description=ESTIMATOR_HELP)


class GfConfig(FlowSettings):
    model_config = ConfigDict(extra="forbid", title="InCoP-GF (gradient flow)")  # the tab label in the Prefect UI
    kind: Literal["incop-gf"] = Field("incop-gf", json_schema_extra=KIND_FIELD)
    epsilon: Epsilon = Field(0.5,
                             description="Stop when ||GF_t - GF*||_2 falls below this (model-dependent)" + AUTO_HELP)
    check_every: int = Field(1, ge=1, description="Measure the flow after every this many epochs.")
    estimator: Estimator = Field("stream", description=ESTIMATOR_HELP)


SIGNALS = {"incop-if": "if", "incop-gf": "gf"}


def flow_key(config: Union[IfConfig, GfConfig]) -> str:
    """The reference/epsilon key: "if", "gf", "if-stream" or "gf-stream"."""
    signal = SIGNALS[config.kind]
    return f"{signal}-stream" if config.estimator == "stream" else signal


class FlowConsistency(Criterion):
    """Flow distance under epsilon, or dense-best validation accuracy, stops retraining."""

    def __init__(self, config: Union[IfConfig, GfConfig], context: CriterionContext) -> None:
        self.config, self.context = config, context
        self.signal, self.key = SIGNALS[config.kind], flow_key(config)
        self.epsilon = context.auto_epsilon[self.key] if config.epsilon == "auto" else config.epsilon

    def current(self, epoch: EpochRecord):
        if self.config.estimator == "stream":
            return epoch.stream[self.signal]
        return self.context.measure(self.signal, epoch.model, epoch.mask)

    def check(self, epoch: EpochRecord) -> Verdict:
        if epoch.epoch % self.config.check_every or (self.config.estimator == "stream" and epoch.stream is None):
            return Verdict(stop=False)  # streamed flows exist only at epoch ends (never at epoch 0)
        start = time.perf_counter()
        distance = flow_distance(self.current(epoch), self.context.reference[self.key])
        seconds = time.perf_counter() - start
        return consistency_verdict(distance, self.epsilon, epoch.val_acc, self.context.dense_best_val_acc, seconds)


CRITERIA.register("incop-if", IfConfig)(FlowConsistency)
CRITERIA.register("incop-gf", GfConfig)(FlowConsistency)
