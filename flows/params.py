"""The pipeline's parameters: one pydantic model, rendered by the Prefect UI as a form and accepted by the CLI."""

from __future__ import annotations

import copy
import os
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from incop_core.imp.config import RunConfig, validate
from incop_core.imp.config_errors import describe
from incop_core.foundations.errors import ConfigError
from incop_core.models.factory import MODEL_MODULES_ENV, factory_allowed
from incop_core.models.zoo import is_factory

ProfileName = Literal["edge-1t", "cpu-2t", "throughput"]


def default_run() -> RunConfig:
    """The main job: FashionMNIST (20k training images and 5k validation images from outside them, so it runs in
    minutes on 2 CPU cores), the small CNN fine-tuned to its plateau (cosine, 15 epochs), then structured pruning that
    makes it faster on the edge: whole filters ranked inside each layer (layer-filter), every layer keeping a multiple
    of 8 filters (SIMD-sized), 20 % of each layer's filters per LTH iteration, retraining stopped by InCoP. Two
    iterations: a third already costs 1.3-1.9 pp of validation accuracy with fixed 5-epoch retraining, past the publish
    rule's 1 pp (bench/results/compare_structured/). A 1024-image probe: each consistency check is one forward pass over
    it, 1.7 % of a 20,000-image training epoch (2048 images cost 3.3 %), and resolves 0.26 % disagreement.
    Retraining after each prune step restarts at half the fine-tuning rate (0.01) and decays it by cosine, distils
    from the fine-tuned dense network (weight 0.5), and the final iteration may use the fine-tuning's own 15 epochs:
    with lr / 10 held constant, labels alone and 10 final epochs the compacted network ended 1.4 pp below dense on
    validation and the rule published `dense` (docs/algorithms.md section 4.5)."""
    return validate({"data": {"name": "fashion-mnist", "train_subset": 20000, "val_size": 5000},
                     "model": {"name": "small-cnn"}, "finetune_epochs": 15,
                     "optim": {"retrain_lr": 0.01, "retrain_schedule": "cosine", "retrain_distill": 0.5},
                     "prune": {"iterations": 2, "scope": "layer-filter", "round_to": 8, "max_epochs": 5,
                               "probe_size": 1024, "schedule": {"kind": "lth", "fraction": 0.2},
                               "criterion": {"kind": "incop", "final_epochs": 15}}})


class PipelineParams(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Pipeline parameters")
    run: RunConfig = Field(default_factory=default_run, description="What to fine-tune and how to prune it.")
    runs_dir: str = Field("runs", min_length=1, description="Directory holding run directories (finished stages are "
                                                            "reused).")
    profiles: list[ProfileName] = Field(default_factory=lambda: ["edge-1t", "cpu-2t"], min_length=1,
                                        description="onnxruntime target profiles to benchmark.")
    bench_rounds: int = Field(15, ge=3, le=1000, description="Timed rounds per model and profile (after warm-up).")
    registry: str = Field("registry", min_length=1, description="Model registry: a directory or any fsspec URL.")
    model_name: str = Field("fashion-cnn", pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
                            description="Name the model is published under (lowercase, digits, . _ -).")
    publish_variant: Literal["best", "int8", "int8-linear", "compacted", "pruned", "dense"] = Field(
        "best", description="Which exported variant to publish; best = the fastest on publish_profile whose validation "
                            "accuracy is within 1 pp of dense and that is not slower than dense (INT8 only where it is "
                            "faster).")
    publish_profile: ProfileName = Field("edge-1t", description="Target profile whose latency chooses the published "
                                                                "variant (must be one of profiles).")
    signing_key: Optional[str] = Field(None, description="Ed25519 private key file; the manifest is signed when given.")
    promote_tolerance_pp: float = Field(
        1.0, ge=0, le=100, description="Release gate: every run publishes to the candidate channel; it moves stable "
                                       "only if its validation accuracy is at most this many points below stable's "
                                       "(measured on this run's validation split), its latency is not worse and its "
                                       "input matches.")
    promote_latency_slack: float = Field(
        0.10, ge=0, le=10, description="Release gate: how much slower than stable on publish_profile (p50, as a "
                                       "fraction, 0.1 = 10 %) still counts as not worse on a shared CPU.")
    storage: Optional[str] = Field(None, description="fsspec URL where GPU and CPU workers exchange stage outputs (the "
                                   "work-pool flows only: `incop pipeline` runs every stage here and warns that it "
                                   "leaves storage unused).")

    @field_validator("registry", "storage")
    @classmethod
    def _known_protocol(cls, value: Optional[str]) -> Optional[str]:
        unknown = unknown_protocol(value)
        if unknown:
            raise ValueError(f"{value!r} uses the unknown storage protocol {unknown}://; use a local directory or a "
                             "URL of an fsspec backend such as s3://, gs:// or memory://")
        return value

    @model_validator(mode="after")
    def _factory_is_allowed(self) -> "PipelineParams":
        name = self.run.model.name
        if is_factory(name) and not factory_allowed(name):
            raise ValueError(f"run.model.name {name} would import and call code on the worker, which the pipeline does "
                             f"only for modules listed in the worker's {MODEL_MODULES_ENV} setting (comma-separated, "
                             f"now {os.environ.get(MODEL_MODULES_ENV) or 'empty'}); add its package there or use a zoo "
                             "model")
        return self

    @model_validator(mode="after")
    def _publish_profile_is_benchmarked(self) -> "PipelineParams":
        if self.publish_profile not in self.profiles:
            raise ValueError(f"publish_profile {self.publish_profile} is not among profiles {self.profiles}; add it to "
                             f"profiles or choose one of them, since its latency chooses the published variant")
        return self


def unknown_protocol(location: Optional[str]) -> Optional[str]:
    """The first protocol of an fsspec URL (chained ones too: simplecache::s3://...) that fsspec does not know, else
    None; a local path has none. Whether its driver is installed is checked where the URL is used."""
    import fsspec

    segments = (location or "").split("::")
    protocols = segments[:-1] + ([segments[-1].split("://", 1)[0]] if "://" in segments[-1] else [])
    return next((p for p in protocols if p.split("://", 1)[0] not in fsspec.available_protocols()), None)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` laid onto `base` (neither is changed): sections merge key by key, so a partial override keeps
    everything else; a plug-in section (one with `kind`) of another kind is replaced whole, since the old kind's
    fields would not fit the new one; lists and single values replace."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and _same_kind(old, value):
            merged[key] = deep_merge(old, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _same_kind(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return "kind" not in old or "kind" not in new or old["kind"] == new["kind"]


def validated(raw: dict[str, Any]) -> PipelineParams:
    """PipelineParams from a plain dict; a bad value is one sentence naming it."""
    try:
        return PipelineParams.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None


def flatten(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: the dotted keys that --set takes."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The dotted keys whose value in `new` differs from `base` ("(unset)" for a key `new` no longer has)."""
    old, now = flatten(base), flatten(new)
    return {key: now.get(key, "(unset)") for key in sorted(old.keys() | now.keys())
            if key not in old or key not in now or old[key] != now[key]}
