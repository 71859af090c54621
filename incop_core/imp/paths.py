"""Every file name in a run directory, in one place."""

from __future__ import annotations

from pathlib import Path

CONFIG = "config.json"
STATUS = "status.json"
LOCK = ".lock"
WIDTHS_CACHE = ".widths.json"  # beside the run directories: conv latencies for round_to auto
ITERATIONS = "iterations"
RECORDS = "records.json"
WEIGHTS = "weights.pt"
MASK = "mask.pt"
RECORD = "record.json"
SETTLE = "settle.pt"  # iteration 0: the dense weights after one decision-check interval of retraining
DENSE_CACHE = "dense"


def run_dir(root: Path, config_hash: str) -> Path:
    return Path(root) / config_hash


def iteration_dir(run: Path, iteration: int) -> Path:
    return Path(run) / ITERATIONS / f"{iteration:04d}"


def dense_cache(run: Path, key: str) -> Path:
    """Fine-tuned dense networks shared by the runs beside `run` that fine-tune identically."""
    return Path(run).parent / DENSE_CACHE / key
