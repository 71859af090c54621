"""The run configuration: one pydantic model, also the CLI's options and the run directory's JSON."""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, field_validator, model_validator

from .criteria import CRITERIA
from .data import DataConfig
from .errors import ConfigError
from .magnitude import Scope
from .models import ModelConfig
from .schedules import SCHEDULES

ScheduleConfig = Annotated[Union[tuple(SCHEDULES.configs())], Field(discriminator="kind")]
CriterionConfig = Annotated[Union[tuple(CRITERIA.configs())], Field(discriminator="kind")]
NOT_HASHED = {"device"}
DEFAULT_KINDS = {"schedule": "sap", "criterion": "incop"}


class OptimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = Field(0.02, gt=0, le=10, description="SGD learning rate for fine-tuning and retraining.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    weight_decay: float = Field(5e-4, ge=0, lt=1, description="L2 weight decay.")
    batch_size: int = Field(128, ge=1, le=65536, description="Training batch size.")
    schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="Fine-tuning learning rate: cosine decays lr towards 0 over finetune_epochs, so the dense "
                              "network converges (a real plateau); constant keeps lr.")
    retrain_lr: Optional[float] = Field(None, gt=0, le=10, description="Constant learning rate of every retraining "
                                        "after a prune step (None: lr / 10, the fine-tuning regime).")

    def retraining(self) -> "OptimConfig":
        """The optimiser settings of retraining: constant `retrain_lr`."""
        return self.model_copy(update={"lr": self.retrain_lr or self.lr / 10, "schedule": "constant"})

    def lr_at(self, epoch: int, epochs: int) -> float:
        """Learning rate of a 1-based epoch out of `epochs`."""
        if self.schedule == "constant":
            return self.lr
        return self.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(epochs, 1)))


class PruneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    iterations: int = Field(5, ge=0, le=200, description="Prune-and-retrain iterations after fine-tuning.")
    scope: Scope = Field("global", description="Ranking scope: global, layer, neuron, filter (structured, one ranking over all filters) or "
                                               "layer-filter (structured, ranked inside each layer: no layer is emptied).")
    round_to: Optional[int] = Field(
        None, ge=2, le=256, description="layer-filter scope only: every layer keeps a multiple of this many filters "
                                        "(the schedule's kept count rounded down, at least one multiple), so removed "
                                        "filters become removed latency on SIMD CPU kernels; None keeps exact counts.")
    max_epochs: int = Field(20, ge=1, le=1000, description="Retraining epochs per iteration at most (exactly, for fixed-epochs).")
    schedule: ScheduleConfig = Field(default_factory=lambda: SCHEDULES.config_for(DEFAULT_KINDS["schedule"])(), description="How much to prune each iteration.")
    criterion: CriterionConfig = Field(default_factory=lambda: CRITERIA.config_for(DEFAULT_KINDS["criterion"])(), description="When to stop retraining.")
    probe_size: int = Field(2048, ge=16, description="Images in the fixed, seeded probe subset of the training split.")
    probe_batch: int = Field(256, ge=1, description="Batch size for probe passes.")
    rewind: Literal["finetuned", "previous"] = Field(
        "finetuned", description="Weights each retraining restarts from: the fine-tuned dense weights (masked), or "
                                 "the previous iteration's trained weights (the paper's text).")
    follow: Optional[list[dict[str, NonNegativeInt]]] = Field(
        None, description="A sparsity trajectory to follow instead of asking the schedule: per iteration, the survivors "
                          "per group after pruning (from another run; `incop compare` sets it so methods match).")

    @model_validator(mode="after")
    def _round_to_needs_layer_filter(self) -> "PruneConfig":
        if self.round_to is not None and self.scope != "layer-filter":
            raise ValueError(f"prune.round_to rounds each layer's filter count, so it needs scope layer-filter "
                             f"(got {self.scope}); set prune.scope=layer-filter or drop round_to")
        return self

    @model_validator(mode="after")
    def _follow_covers_iterations(self) -> "PruneConfig":
        if self.follow is not None and len(self.follow) < self.iterations:
            raise ValueError(f"prune.follow holds {len(self.follow)} iterations but prune.iterations is {self.iterations}")
        return self

    @field_validator("schedule", "criterion", mode="before")
    @classmethod
    def _default_kind(cls, value: Any, info) -> Any:
        """A section without `kind` (only --epsilon, say) tunes the default plug-in."""
        if isinstance(value, dict) and "kind" not in value:
            value = {"kind": DEFAULT_KINDS[info.field_name], **value}
        return value


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = Field(0, ge=0, description="Seed for splits, initialisation and data order.")
    data: DataConfig = Field(default_factory=DataConfig, description="Which data and how it is split.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Which architecture.")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="Optimiser settings.")
    finetune_epochs: int = Field(5, ge=1, le=1000, description="Dense fine-tuning epochs, at most (the best validation epoch is kept).")
    finetune_plateau_pp: Optional[float] = Field(
        None, gt=0, le=100, description="Stop fine-tuning at the plateau: when validation accuracy gained less than "
                                        "this many points over the last 2 epochs (None: always finetune_epochs).")
    prune: PruneConfig = Field(default_factory=PruneConfig, description="The iterative pruning loop.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto uses CUDA when present, else the CPU.")

    @model_validator(mode="after")
    def _plateau_needs_constant_lr(self) -> "RunConfig":
        if self.finetune_plateau_pp is not None and self.optim.schedule == "cosine":
            raise ValueError("finetune_plateau_pp would stop a cosine schedule half-way; set optim.schedule=constant "
                             "with it, or drop it (cosine fine-tuning converges in finetune_epochs)")
        return self

    def config_hash(self) -> str:
        """Hash of the canonical config (device excluded: it does not change what is computed)."""
        canonical = json.dumps(self.model_dump(mode="json", exclude=NOT_HASHED), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def describe(exc: ValidationError) -> str:
    """One sentence for the first problem pydantic found."""
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("function-", "tagged-union")))
    if error["type"] == "union_tag_invalid":
        what = "schedule" if "schedule" in where else "criterion"
        names = (SCHEDULES if what == "schedule" else CRITERIA).names()
        return f"unknown {what} {error['ctx']['tag']!r}; choose one of: {', '.join(names)}"
    message = error["msg"].removeprefix("Value error, ")
    got = "" if error["type"] == "value_error" else f" (got {error.get('input')!r})"
    return f"bad config value at {where or 'top level'}: {message}{got}; fix it in the config file or flags"


def validate(raw: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a JSON or TOML config file into a plain dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; check the path given to --config")
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({exc}); fix its syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold an object of settings at the top level")
    return raw


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set raw['a']['b'] = value for dotted 'a.b', creating levels as needed."""
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {dotted}: {key} is a single value, not a section; use --set {key}=VALUE")
        node = child
    node[leaf] = value
