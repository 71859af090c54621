"""The pipeline's parameters: one pydantic model, rendered by the Prefect UI as a form and accepted by the CLI."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from incop_core.config import RunConfig, validate

ProfileName = Literal["edge-1t", "cpu-2t", "throughput"]


def default_run() -> RunConfig:
    """The main job: FashionMNIST (20k training images and 5k validation images from outside them, so it runs in
    minutes on 2 CPU cores), the small CNN fine-tuned to its plateau (cosine, 15 epochs), then structured pruning that
    makes it faster on the edge: whole filters ranked inside each layer (layer-filter), every layer keeping a multiple
    of 8 filters (SIMD-sized), 20 % of each layer's filters per LTH iteration, retraining stopped by InCoP."""
    return validate({"data": {"name": "fashion-mnist", "train_subset": 20000, "val_size": 5000}, "model": {"name": "small-cnn"},
                     "finetune_epochs": 15,
                     "prune": {"iterations": 2, "scope": "layer-filter", "round_to": 8, "max_epochs": 5,
                               "schedule": {"kind": "lth", "fraction": 0.2}, "criterion": {"kind": "incop"}}})


class PipelineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run: RunConfig = Field(default_factory=default_run, description="What to fine-tune and how to prune it.")
    runs_dir: str = Field("runs", min_length=1, description="Directory holding run directories (finished stages are reused).")
    profiles: list[ProfileName] = Field(default_factory=lambda: ["edge-1t", "cpu-2t"], min_length=1,
                                        description="onnxruntime target profiles to benchmark.")
    bench_rounds: int = Field(15, ge=3, le=1000, description="Timed rounds per model and profile (after warm-up).")
    registry: str = Field("registry", min_length=1, description="Model registry: a directory or any fsspec URL.")
    model_name: str = Field("fashion-cnn", pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
                            description="Name the model is published under (lowercase, digits, . _ -).")
    publish_variant: Literal["best", "int8", "int8-linear", "compacted", "pruned", "dense"] = Field(
        "best", description="Which exported variant to publish; best = the fastest on publish_profile whose validation "
                            "accuracy is within 1 pp of dense and that is not slower than dense (INT8 only where it is faster).")
    publish_profile: ProfileName = Field("edge-1t", description="Target profile whose latency chooses the published variant "
                                                                "(must be one of profiles).")
    signing_key: Optional[str] = Field(None, description="Ed25519 private key file; the manifest is signed when given.")
    storage: Optional[str] = Field(None, description="fsspec URL where GPU and CPU workers exchange stage outputs.")

    @model_validator(mode="after")
    def _publish_profile_is_benchmarked(self) -> "PipelineParams":
        if self.publish_profile not in self.profiles:
            raise ValueError(f"publish_profile {self.publish_profile} is not among profiles {self.profiles}; add it to "
                             f"profiles or choose one of them, since its latency chooses the published variant")
        return self
