"""Every bad input a user can meet: one sentence naming the fix, exit status 2, no traceback, nothing half-written."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import incop_core.training.train
from tests.support.bad_inputs import error_sentence, incop_command
from incop_core.imp import paths
from incop_core.cli.main import build_config
from incop_core.datasets.idx import write_idx
from incop_core.imp.rundir import finished_iterations, read_status
from tests.support.cli import TINY, assert_user_error, invoke


def assert_nothing_written(runs: Path) -> None:
    assert not runs.exists() or not any(runs.iterdir()), f"a rejected input left {sorted(runs.rglob('*'))}"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def make_idx_root(root: Path, n_train: int = 40, n_test: int = 12) -> Path:
    """A tiny, valid FashionMNIST-style IDX directory (gzip-compressed)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    return root


CONFIG_REJECTIONS = {
    "unknown schedule": (["--schedule", "nope"], ["'nope'", "lth", "sap"]),
    "unknown criterion": (["--criterion", "nope"], ["'nope'", "incop-if", "fixed-epochs"]),
    "unknown model": (["--model", "nope"], ["model.name", "small-cnn"]),
    "unknown dataset": (["--dataset", "nope"], ["data.name", "fashion-mnist"]),
    "sap p >= q": (["--schedule", "sap", "--set", "prune.schedule.p=1.0", "--set", "prune.schedule.q=0.5"], ["p < q"]),
    "epsilon zero with criterion": (["--criterion", "incop-if", "--epsilon", "0"], ["epsilon", "greater than 0"]),
    "epsilon negative gf": (["--criterion", "incop-gf", "--epsilon", "-1"], ["epsilon"]),
    "epsilon zero, default criterion": (["--epsilon", "0"], ["epsilon", "greater than 0"]),
    "lth fraction above 1": (["--schedule", "lth", "--set", "prune.schedule.fraction=1.5"], ["fraction", "1.5"]),
    "lth fraction zero": (["--schedule", "lth", "--set", "prune.schedule.fraction=0"], ["fraction"]),
    "val fraction zero": (["--set", "data.val_fraction=0"], ["data.val_fraction"]),
    "val fraction one": (["--set", "data.val_fraction=1"], ["data.val_fraction"]),
    "negative max epochs": (["--max-epochs", "-1"], ["prune.max_epochs", "-1"]),
    "negative finetune epochs": (["--finetune-epochs", "-2"], ["finetune_epochs", "-2"]),
    "unknown nested --set key": (["--set", "prune.bogus=1"], ["prune.bogus"]),
    "unknown top-level --set key": (["--set", "bogus=1"], ["bogus"]),
    "--set without =": (["--set", "prune.iterations"], ["KEY=VALUE"]),
    "--set into a value": (["--seed", "1", "--set", "seed.x=2"], ["seed"]),
    "unknown --device": (["--device", "tpu"], ["device"]),
}


@pytest.mark.parametrize("args, mentions", CONFIG_REJECTIONS.values(), ids=CONFIG_REJECTIONS.keys())
def test_bad_config_values_are_one_sentence_and_write_nothing(tmp_path, args, mentions):
    runs = tmp_path / "runs"
    assert_user_error(invoke("prune", *TINY, "--runs-dir", runs, *args), *mentions)
    assert_nothing_written(runs)


def test_epsilon_alone_applies_to_the_default_criterion():
    """`--epsilon` without `--criterion` tunes the default criterion (incop) instead of failing."""
    flags = {"data.name": "synthetic"}
    cfg = build_config(None, flags, ["prune.criterion.epsilon=0.05"])
    assert cfg.prune.criterion.kind == "incop"
    assert cfg.prune.criterion.epsilon == 0.05


@pytest.mark.parametrize("name, text, mentions", [
    ("bad.json", "{not json", ["JSON", "syntax"]),
    ("list.json", "[1, 2, 3]", ["object", "top level"]),
    ("bad.toml", "seed = = 3", ["TOML", "syntax"]),
    ("wrong.json", json.dumps({"optim": {"lr": "fast"}}), ["optim.lr", "'fast'"]),
], ids=["invalid-json", "json-list", "invalid-toml", "wrong-type"])
def test_malformed_config_file(tmp_path, name, text, mentions):
    path = tmp_path / name
    path.write_text(text)
    runs = tmp_path / "runs"
    assert_user_error(invoke("prune", *TINY, "--runs-dir", runs, "--config", path), *mentions)
    assert_nothing_written(runs)


def test_missing_config_file(tmp_path):
    runs = tmp_path / "runs"
    assert_user_error(invoke("prune", *TINY, "--runs-dir", runs, "--config", "/nope.json"), "/nope.json", "--config")
    assert_nothing_written(runs)


def test_error_sentence_is_one_unwrapped_line(tmp_path):
    """A long path in the sentence stays whole on one line, so it can be copied and grepped."""
    missing = tmp_path / ("deep-folder-name-" * 8) / "config.json"
    code, _, stderr, _ = invoke("prune", *TINY, "--runs-dir", tmp_path / "runs", "--config", missing)
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), f"the sentence was wrapped: {stderr!r}"
    assert str(missing) in lines[0]


def test_missing_data_directory(tmp_path):
    runs = tmp_path / "runs"
    outcome = invoke("prune", *TINY, "--runs-dir", runs, "--dataset", "fashion-mnist", "--data-root", "/nonexistent")
    assert_user_error(outcome, "/nonexistent", "--data-root")
    assert_nothing_written(runs)


def test_data_root_without_idx_files(tmp_path):
    runs, empty = tmp_path / "runs", tmp_path / "empty"
    empty.mkdir()
    outcome = invoke("prune", *TINY, "--runs-dir", runs, "--dataset", "fashion-mnist", "--data-root", empty)
    assert_user_error(outcome, "train-images-idx3-ubyte", "--data-root")
    assert_nothing_written(runs)


def test_valid_tiny_idx_directory_is_accepted(tmp_path):
    """The control for the corrupt-file cases below: the untouched directory trains fine."""
    root = make_idx_root(tmp_path / "idx")
    code, stdout, stderr, exception = invoke("prune", *TINY, "--runs-dir", tmp_path / "runs", "--dataset",
                                             "fashion-mnist", "--data-root", root)
    assert code == 0, f"{exception!r} {stderr}"
    assert Path(stdout.strip().splitlines()[-1]).is_dir()


def _truncate_gzip(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncate_payload(path: Path) -> None:
    payload = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(payload[:-100]))


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not an IDX file at all" * 10)


def _garbage_inside_gzip(path: Path) -> None:
    path.write_bytes(gzip.compress(b"\xff" * 200))


@pytest.mark.parametrize("stem, damage", [
    ("train-images-idx3-ubyte", _truncate_gzip),
    ("t10k-images-idx3-ubyte", _truncate_payload),
    ("train-labels-idx1-ubyte", _garbage),
    ("t10k-labels-idx1-ubyte", _garbage_inside_gzip),
], ids=["truncated-gzip", "truncated-payload", "garbage", "garbage-inside-gzip"])
def test_corrupt_or_truncated_idx_file(tmp_path, stem, damage):
    root = make_idx_root(tmp_path / "idx")
    damage(root / f"{stem}.gz")
    runs = tmp_path / "runs"
    outcome = invoke("prune", *TINY, "--runs-dir", runs, "--dataset", "fashion-mnist", "--data-root", root)
    assert_user_error(outcome, f"{stem}.gz", "corrupt or truncated")
    assert_nothing_written(runs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_requested_without_a_gpu(tmp_path):
    runs = tmp_path / "runs"
    assert_user_error(invoke("prune", *TINY, "--runs-dir", runs, "--device", "cuda"), "choose auto or cpu")
    assert_nothing_written(runs)


def test_run_directory_of_a_different_config_is_refused_and_left_alone(tmp_path):
    runs, run = tmp_path / "runs", tmp_path / "mine"
    code, _, stderr, exception = invoke("prune", *TINY, "--runs-dir", runs, "--run-dir", run)
    assert code == 0, f"{exception!r} {stderr}"
    before = snapshot(run)
    assert "config.json" in before and "records.json" in before
    mtimes = {p: p.stat().st_mtime_ns for p in run.rglob("*")}

    assert_user_error(invoke("prune", *TINY, "--runs-dir", runs, "--run-dir", run, "--seed", "1"),
                      "different config", str(run))
    assert snapshot(run) == before
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == mtimes
    assert_nothing_written(runs)


def test_non_empty_run_directory_without_a_config_is_refused(tmp_path):
    runs, run = tmp_path / "runs", tmp_path / "busy"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    assert_user_error(invoke("prune", *TINY, "--runs-dir", runs, "--run-dir", run), str(run))
    assert snapshot(run) == {"notes.txt": b"mine"}
    assert_nothing_written(runs)


def test_report_of_an_unknown_run(tmp_path):
    runs = tmp_path / "runs"
    assert_user_error(invoke("report", "nosuchrun", "--runs-dir", runs), "nosuchrun", "incop runs")
    assert_nothing_written(runs)


@pytest.mark.parametrize("args, mention", [
    (["--schedule", "nope"], "unknown schedule"),
    (["--config", "/nope.json"], "/nope.json"),
], ids=["unknown-schedule", "missing-config"])
def test_installed_command_exits_2_with_one_sentence(tmp_path, args, mention):
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*incop_command(), "prune", *TINY, "--runs-dir", str(runs), *args], capture_output=True,
                          text=True, env=env, timeout=120)
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 2, done.stderr
    assert mention in error_sentence(done.stderr)
    assert done.stdout.strip() == ""
    assert_nothing_written(runs)


class PoisonedLoss:
    """Stands in for torch.nn.functional inside incop_core.training.train; the loss turns NaN from the n-th call on."""

    def __init__(self, poison_from: int | None) -> None:
        self.calls, self.poison_from = 0, poison_from

    def __getattr__(self, name: str):
        return getattr(torch.nn.functional, name)

    def cross_entropy(self, *args, **kwargs) -> torch.Tensor:
        self.calls += 1
        loss = torch.nn.functional.cross_entropy(*args, **kwargs)
        if self.poison_from is not None and self.calls >= self.poison_from:
            return loss * float("nan")
        return loss


def test_nan_loss_stops_with_a_clear_error_and_keeps_finished_iterations(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    # One batch per epoch (58 training images < batch 128), one epoch per stage: call 1 is the fine-tune,
    # call 2 the dense network's noise calibration (one retraining epoch), call 3 iteration 1, call 4 iteration 2.
    args = ["prune", *TINY, "--runs-dir", runs, "--iterations", "3", "--criterion", "fixed-epochs"]
    poisoned = PoisonedLoss(poison_from=4)
    monkeypatch.setattr(incop_core.training.train, "F", poisoned)
    assert_user_error(invoke(*args), "optim.lr")
    assert poisoned.calls == 4

    (run,) = [p for p in runs.iterdir() if p.is_dir() and p.name != paths.DENSE_CACHE]
    assert finished_iterations(run) == [0, 1]
    assert sorted(p.name for p in (run / "iterations").iterdir()) == ["0000", "0001"]
    status = read_status(run)
    assert status["state"] == "failed" and "nan" in status["error"].lower()
    kept = {t: (run / "iterations" / f"{t:04d}" / "record.json") for t in (0, 1)}
    stamps = {t: (p.stat().st_mtime_ns, p.read_bytes()) for t, p in kept.items()}

    counting = PoisonedLoss(poison_from=None)
    monkeypatch.setattr(incop_core.training.train, "F", counting)
    code, stdout, stderr, exception = invoke(*args)
    assert code == 0, f"{exception!r} {stderr}"
    assert Path(stdout.strip().splitlines()[-1]) == run
    assert counting.calls == 2, "only iterations 2 and 3 may be trained on resume"
    assert finished_iterations(run) == [0, 1, 2, 3]
    assert read_status(run)["state"] == "finished"
    assert {t: (p.stat().st_mtime_ns, p.read_bytes()) for t, p in kept.items()} == stamps
