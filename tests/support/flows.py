"""Pipeline parameters the flows tests start from."""

from pathlib import Path

from flows.params import PipelineParams
from incop_core.imp.config import validate


def tiny_params(tmp_path: Path) -> PipelineParams:
    """A pipeline that prunes, exports, benchmarks and publishes in seconds (tiny synthetic data, one profile)."""
    run = validate({"data": {"name": "synthetic", "synthetic_size": 160, "image_size": 16},
                    "model": {"width": 8}, "finetune_epochs": 2,
                    "prune": {"iterations": 2, "max_epochs": 2, "probe_size": 32, "scope": "filter",
                              "schedule": {"kind": "lth", "fraction": 0.4}}})
    return PipelineParams(run=run, runs_dir=str(tmp_path / "runs"), registry=str(tmp_path / "registry"),
                          profiles=["edge-1t"], bench_rounds=3, model_name="tiny-cnn")


def good_params(tmp_path: Path) -> PipelineParams:
    """Parameters every flow-start check passes (sap orders set, outputs under tmp_path)."""
    run = validate({"data": {"name": "synthetic"}, "prune": {"schedule": {"kind": "sap", "p": 0.5, "q": 1.0}}})
    return PipelineParams(run=run, runs_dir=str(tmp_path / "runs"), registry=str(tmp_path / "registry"))
