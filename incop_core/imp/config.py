"""The run configuration: one pydantic model, also the CLI's options and the run directory's JSON."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, ValidatorFunctionWrapHandler,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError

from incop_core.criteria import CRITERIA
from incop_core.datasets.config import DataConfig
from incop_core.foundations.errors import ConfigError
from incop_core.foundations.hashdump import NEW_SETTING, hashed_dump
from incop_core.pruning.magnitude import PER_LAYER_FILTERS, Scope
from incop_core.models.zoo import ModelConfig
from incop_core.foundations.rawconfig import MAX_DEPTH, boolean_number, too_deep
from incop_core.imp.config_errors import PLUGIN_ERROR, describe, plugin_problem
from incop_core.pruning.schedules import SCHEDULES
from incop_core.training.optim import OptimConfig

ScheduleConfig = Annotated[Union[tuple(SCHEDULES.configs())], Field(discriminator="kind")]
CriterionConfig = Annotated[Union[tuple(CRITERIA.configs())], Field(discriminator="kind")]
NOT_HASHED = {"device"}
DEFAULT_KINDS = {"schedule": "sap", "criterion": "incop"}
OWN_ROOT = ("fashion-mnist", "synthetic")  # data sets that need no data.root
MAX_SEED = 2**32 - 1  # torch and numpy generators take it; derived seeds (seed * 100_003 + epoch) stay in int64


def as_choice(schema: dict[str, Any]) -> None:
    """Show a plug-in union as a choice of kinds: Prefect's UI forms render `anyOf` of titled `$ref`s as one tab per
    kind with its own fields, but `oneOf` (pydantic's discriminated union) as a raw JSON editor. Only the JSON schema
    changes: validation stays pydantic's discriminated union on `kind`."""
    if "oneOf" in schema:
        schema["anyOf"] = schema.pop("oneOf")


class PruneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Pruning")
    iterations: int = Field(5, ge=0, le=200, description="Prune-and-retrain iterations after fine-tuning.")
    scope: Scope = Field("global", description="Ranking scope: global, layer, neuron, filter (structured, one ranking "
                                               "over all filters) or layer-filter (structured, ranked inside each "
                                               "layer: no layer is emptied) or group (structured: coupled channel sets "
                                               "of BN, depthwise convs and residual adds pruned as one, so every "
                                               "pruned channel is removed by compaction).")
    round_to: Union[Annotated[int, Field(ge=2, le=256)], Literal["auto"], None] = Field(
        None, description="layer-filter and group scopes only: every layer (group) keeps a multiple of this many "
                          "filters (the schedule's kept count rounded down, at least one multiple), so removed filters "
                          "become removed latency on SIMD CPU kernels; auto measures the kept widths k-7..k of every "
                          "layer (group) with onnxruntime on one thread, once per machine, and keeps the widest within "
                          "5 % of the fastest; None keeps exact counts.")
    round_mode: Annotated[Literal["down", "nearest"], NEW_SETTING] = Field(  # hashed only off its default
        "down",
        description="How an integer round_to rounds each kept count: down (never keeps more than the schedule asks) "
                    "or nearest (the multiple closest to the ask, so narrow layers are not halved).")
    max_epochs: int = Field(20, ge=1, le=1000, description="Retraining epochs per iteration at most (exactly, for "
                                                           "fixed-epochs).")
    schedule: ScheduleConfig = Field(default_factory=lambda: SCHEDULES.config_for(DEFAULT_KINDS["schedule"])(),
                                     description="How much to prune each iteration: choose a kind "
                                                 f"({', '.join(SCHEDULES.names())}), then its settings.",
                                     json_schema_extra=as_choice)
    criterion: CriterionConfig = Field(default_factory=lambda: CRITERIA.config_for(DEFAULT_KINDS["criterion"])(),
                                       description="When to stop retraining: choose a kind "
                                                   f"({', '.join(CRITERIA.names())}), then its settings.",
                                       json_schema_extra=as_choice)
    probe_size: int = Field(2048, ge=16, description="Images in the fixed, seeded probe subset of the training split.")
    probe_batch: int = Field(256, ge=1, description="Batch size for probe passes.")
    rewind: Literal["finetuned", "previous"] = Field(
        "finetuned", description="Weights each retraining restarts from: the fine-tuned dense weights (masked), or "
                                 "the previous iteration's trained weights (the paper's text).")
    follow: Optional[list[dict[str, NonNegativeInt]]] = Field(
        None, description="A sparsity trajectory to follow instead of asking the schedule: per iteration, the "
                          "survivors per group after pruning (from another run; `incop compare` sets it so methods "
                          "match).")

    @model_validator(mode="after")
    def _round_to_needs_layer_filter(self) -> "PruneConfig":
        if self.round_to is not None and self.scope not in PER_LAYER_FILTERS:
            raise ValueError("prune.round_to rounds each layer's filter count, so it needs scope layer-filter or "
                             f"group (got {self.scope}); set prune.scope=layer-filter or leave prune.round_to empty")
        if self.round_mode != "down" and not isinstance(self.round_to, int):
            raise ValueError(f"prune.round_mode={self.round_mode} rounds an integer prune.round_to (got "
                             f"{self.round_to}); set prune.round_to=8, say, or leave prune.round_mode at down")
        return self

    @model_validator(mode="after")
    def _follow_covers_iterations(self) -> "PruneConfig":
        if self.follow is not None and len(self.follow) < self.iterations:
            raise ValueError(f"prune.follow holds {len(self.follow)} iterations but prune.iterations is "
                             f"{self.iterations}; lower prune.iterations or follow a longer run")
        return self

    @field_validator("schedule", "criterion", mode="before")
    @classmethod
    def _default_kind(cls, value: Any, info) -> Any:
        """A section without `kind` (only --epsilon, say) tunes the default plug-in."""
        if isinstance(value, dict) and "kind" not in value:
            value = {"kind": DEFAULT_KINDS[info.field_name], **value}
        return value

    @field_validator("schedule", "criterion", mode="wrap")
    @classmethod
    def _name_the_setting(cls, value: Any, handler: ValidatorFunctionWrapHandler, info) -> Any:
        """One error naming the plug-in's setting (`epsilon`), not pydantic's union branches."""
        try:
            return handler(value)
        except ValidationError as exc:
            setting, message = plugin_problem(info.field_name, exc)
            raise PydanticCustomError(PLUGIN_ERROR, "{message}", {"message": message, "setting": setting}) from None


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Run")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed for splits, initialisation and data order.")
    data: DataConfig = Field(default_factory=DataConfig, description="Which data and how it is split.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Which architecture.")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="Optimiser settings.")
    finetune_epochs: int = Field(5, ge=1, le=1000, description="Dense fine-tuning epochs, at most (the best validation "
                                                               "epoch is kept).")
    finetune_plateau_pp: Optional[float] = Field(
        None, gt=0, le=100, description="Stop fine-tuning at the plateau: when validation accuracy gained less than "
                                        "this many points over the last 2 epochs (None: always finetune_epochs).")
    prune: PruneConfig = Field(default_factory=PruneConfig, description="The iterative pruning loop.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto uses CUDA when present, else the CPU.")

    @model_validator(mode="wrap")
    @classmethod
    def _plain_input(cls, raw: Any, handler: ValidatorFunctionWrapHandler) -> "RunConfig":
        """Settings nested deeper than any config, or a boolean where a number belongs, are refused (rawconfig.py)."""
        deep = too_deep(raw) if isinstance(raw, dict) else None
        if deep:
            raise ValueError(f"the settings nest more than {MAX_DEPTH} levels deep at {deep}, deeper than any setting")
        validated = handler(raw)
        flag = boolean_number(raw, validated) if isinstance(raw, dict) else None
        if flag:
            raise ValueError(f"bad config value at {flag}: a boolean where a number belongs (true is not read as 1)")
        return validated

    @field_validator("seed", mode="before")
    @classmethod
    def _whole_seed(cls, value: Any) -> Any:
        if isinstance(value, float) and not (value.is_integer() and 0 <= value <= MAX_SEED):
            raise ValueError(f"the seed must be a whole number from 0 to {MAX_SEED}")
        return value

    @model_validator(mode="after")
    def _plateau_needs_constant_lr(self) -> "RunConfig":
        if self.finetune_plateau_pp is not None and self.optim.schedule == "cosine":
            raise ValueError("finetune_plateau_pp would stop a cosine schedule half-way; set optim.schedule=constant "
                             "with it, or leave finetune_plateau_pp empty (cosine fine-tuning converges in "
                             "finetune_epochs)")
        return self

    @model_validator(mode="after")
    def _data_set_has_a_root(self) -> "RunConfig":
        if self.data.name not in OWN_ROOT and not self.data.root:
            raise ValueError(f"data.root is empty: data set {self.data.name} needs a root directory holding its files "
                             f"(UI field run.data.root, config field data.root, CLI --data-root)")
        return self

    def config_hash(self) -> str:
        """Hash of the canonical config (device excluded: it does not change what is computed)."""
        canonical = json.dumps(hashed_dump(self, exclude=NOT_HASHED), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def validate(raw: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None
