"""Runs recover from crashes: leftovers of a first config.json write, a "running" status nobody runs, and a training
that collapsed to chance accuracy is told, not hidden."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.bad_inputs import run_incop
from incop_core.imp import paths
from incop_core.imp.config import validate
from incop_core.foundations.errors import ConfigError
from incop_core.imp.records import chance_warnings
from incop_core.imp.rundir import CRASHED, check_status, clear_partial, open_run, read_status, write_status
from incop_core.imp.runlock import locked
from incop_core.imp.runner import run_pruning
from tests.support.cli import invoke

RAW = {"data": {"name": "synthetic", "synthetic_size": 64, "image_size": 8}, "model": {"width": 4},
       "finetune_epochs": 1, "prune": {"iterations": 1, "max_epochs": 1, "probe_size": 16, "probe_batch": 16,
                                       "criterion": {"kind": "fixed-epochs"}}}
LEFTOVERS = [".config.json.k2j3h4.tmp", paths.LOCK, paths.STATUS, ".status.json.x8y9.tmp"]


# -- 7a: a crash while the first config.json is written -------------------------------------------------------------

@pytest.mark.parametrize("names", [LEFTOVERS[:1], LEFTOVERS], ids=["temp-file", "temp-lock-status"])
def test_a_directory_of_the_runs_own_leftovers_is_reused(tmp_path, names):
    run = tmp_path / "run"
    run.mkdir()
    for name in names:
        (run / name).write_text("{}")
    config = validate(RAW)
    assert open_run(config, tmp_path, run) == run
    assert json.loads((run / paths.CONFIG).read_text())["seed"] == config.seed


def test_stale_temp_files_are_cleared_once_the_run_is_locked(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stale, fresh, foreign = run / ".config.json.old.tmp", run / ".status.json.new.tmp", run / ".notes.tmp"
    for path in (stale, fresh, foreign):
        path.write_text("{")
    os.utime(stale, (1, 1))
    clear_partial(run)
    assert not stale.exists() and fresh.exists() and foreign.exists()


def test_a_directory_with_foreign_files_is_still_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in [*LEFTOVERS, "notes.txt"]:
        (run / name).write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        open_run(validate(RAW), tmp_path, run)
    assert sorted(p.name for p in run.iterdir()) == sorted([*LEFTOVERS, "notes.txt"])


def test_prune_into_leftovers_of_a_crashed_first_write_runs(tmp_path):
    config = json_file(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / ".config.json.abc123.tmp").write_text('{"half": ')
    (run / paths.LOCK).write_text("")
    code, stdout, stderr, exception = invoke("prune", "--config", config, "--run-dir", run)
    assert code == 0, f"{exception!r} {stderr}"
    assert read_status(run)["state"] == "finished"


# -- 7b: a crashed run keeps status "running" ------------------------------------------------------------------------

def crashed_run(tmp_path):
    """A run whose process died mid-run: status "running", its lock file there but held by nobody."""
    run = open_run(validate(RAW), tmp_path / "runs")
    with locked(run):
        write_status(run, "running", 0, 1)
    return run


def test_a_running_status_without_a_live_lock_holder_becomes_failed(tmp_path):
    run = crashed_run(tmp_path)
    assert read_status(run)["state"] == "running", "read_status reports what was written"
    status = check_status(run)
    assert status["state"] == "failed" and status["error"] == CRASHED
    assert read_status(run) == status, "the correction is written back"


def test_a_run_whose_lock_is_held_stays_running(tmp_path):
    run = crashed_run(tmp_path)
    with locked(run):
        before = (run / paths.STATUS).read_bytes()
        assert check_status(run)["state"] == "running"
        assert (run / paths.STATUS).read_bytes() == before


def test_a_run_killed_in_another_process_is_reported_crashed(tmp_path):
    run = open_run(validate(RAW), tmp_path / "runs")
    script = ("import os, sys; from pathlib import Path; from incop_core.imp.runlock import locked\n"
              "from incop_core.imp.rundir import write_status\n"
              "with locked(Path(sys.argv[1])):\n"
              "    write_status(Path(sys.argv[1]), 'running', 0, 1)\n    os._exit(9)\n")
    done = subprocess.run([sys.executable, "-c", script, str(run)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    assert read_status(run)["state"] == "running"
    listing = run_incop("runs", "--runs-dir", run.parent)
    assert listing[0] == 0 and "failed" in listing[1]
    report = run_incop("report", run)
    assert report[0] == 0 and "(failed)" in report[1]
    assert "crashed" in " ".join(report[2].split()) and "re-run the same command" in " ".join(report[2].split())


def test_a_hand_made_running_status_without_a_lock_file_is_left_alone(tmp_path):
    run = open_run(validate(RAW), tmp_path / "runs")
    write_status(run, "running", 0, 1)
    assert check_status(run)["state"] == "running"


def test_a_crashed_run_resumes(tmp_path):
    run = crashed_run(tmp_path)
    assert run_pruning(validate(RAW), tmp_path / "runs") == run
    assert check_status(run)["state"] == "finished"


# -- 7c: training that ends at chance accuracy -----------------------------------------------------------------------

def test_chance_warnings_from_a_record():
    record = {"iteration": 0, "val_acc": 0.102, "test_acc": 0.4}
    (warning,) = chance_warnings(record, 10)
    assert "fine-tuning ended at chance accuracy" in warning and "chance 10 %" in warning and "optim.lr" in warning
    assert chance_warnings({"iteration": 2, "val_acc": 0.5, "test_acc": 0.45}, 10) == []
    assert "optim.retrain_lr" in chance_warnings({"iteration": 2, "val_acc": 0.25, "test_acc": 0.3}, 4)[0]


def test_a_huge_learning_rate_warns_once(tmp_path):
    args = ["prune", "--dataset", "synthetic", "--iterations", "2", "--max-epochs", "1", "--finetune-epochs", "2",
            "--criterion", "fixed-epochs", "--set", "data.synthetic_size=120", "--set", "data.num_classes=10",
            "--set", "prune.probe_size=16", "--set", "model.width=4", "--set", "data.image_size=8",
            "--set", "optim.lr=10", "--set", "optim.schedule=constant", "--runs-dir", tmp_path / "runs"]
    code, stdout, stderr, exception = invoke(*args)
    assert code == 0, f"{exception!r} {stderr}"
    run = tmp_path / "runs" / stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    record = json.loads((paths.iteration_dir(run, 0) / paths.RECORD).read_text())
    assert record["warnings"] and "chance accuracy" in record["warnings"][0]
    lines = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1, stderr
    flat = " ".join(stderr.split())
    assert "fine-tuning ended at chance accuracy" in flat and "lower the learning rate" in flat


def json_file(folder):
    path = folder / "config.json"
    path.write_text(json.dumps(RAW))
    return path
