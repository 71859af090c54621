"""The pipeline's parameters: one pydantic model, rendered by the Prefect UI as a form and accepted by the CLI."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from incop_core.config import RunConfig, validate

ProfileName = Literal["edge-1t", "cpu-2t", "throughput"]


def default_run() -> RunConfig:
    """The main job: FashionMNIST (20k training images, so it runs in minutes on 2 CPU cores), the small CNN,
    SAP schedule with the default InCoP stopping rule (output consistency, auto epsilon), 5 iterations."""
    return validate({"data": {"name": "fashion-mnist", "train_subset": 20000}, "model": {"name": "small-cnn"},
                     "finetune_epochs": 3,
                     "prune": {"iterations": 5, "criterion": {"kind": "incop"}}})


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
    publish_variant: Literal["best", "int8", "compacted", "pruned", "dense"] = Field(
        "best", description="Which exported variant to publish; best = the smallest whose accuracy is within 1 pp of dense.")
    signing_key: Optional[str] = Field(None, description="Ed25519 private key file; the manifest is signed when given.")
    storage: Optional[str] = Field(None, description="fsspec URL where GPU and CPU workers exchange stage outputs.")
