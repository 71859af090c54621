"""The pruning loop end to end: records, shrinking masks, resume after a crash, nothing redone, one worker per run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import incop_core.imp.stages
from incop_core.imp import paths
from incop_core.cli.main import app
from incop_core.imp.config import RunConfig, validate
from incop_core.foundations.errors import RunLocked
from incop_core.foundations.fileio import read_json
from incop_core.pruning.masks import Mask
from incop_core.imp.rundir import finished_iterations, load_records, open_run, read_status
from incop_core.imp.runner import run_pruning

STOP_REASONS = {"settled", "flow", "plateau", "accuracy", "max-epochs"}
RECORD_FIELDS = {"remaining", "remaining_per_layer", "epochs", "stop_reason", "distances", "val_acc", "test_acc",
                 "wall_seconds", "flow_seconds"}
ENV_ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def raw_config(iterations: int = 2, max_epochs: int = 3, criterion: str = "incop-if", size: int = 128) -> dict:
    return {"data": {"name": "synthetic", "synthetic_size": size, "image_size": 16}, "model": {"width": 8},
            "finetune_epochs": 2,
            "prune": {"iterations": iterations, "max_epochs": max_epochs, "probe_size": 32, "probe_batch": 16,
                      "criterion": {"kind": criterion}}}


@pytest.fixture
def one_thread():
    """Same thread count here and in the subprocesses, so float results agree bit for bit."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[RunConfig, Path]:
    config = validate(raw_config())
    root = tmp_path_factory.mktemp("runs")
    return config, run_pruning(config, root)


def mask_of(run: Path, t: int) -> Mask:
    return Mask.load(paths.iteration_dir(run, t) / paths.MASK)


def weights_of(run: Path, t: int) -> dict:
    return torch.load(paths.iteration_dir(run, t) / paths.WEIGHTS, map_location="cpu", weights_only=True)


def test_end_to_end_records_masks_and_status(finished_run):
    config, run = finished_run
    records = load_records(run)
    assert [r["iteration"] for r in records] == [0, 1, 2]
    assert read_json(run / paths.RECORDS) == records
    status = read_status(run)
    assert status["state"] == "finished" and status["iterations_done"] == 2 and status["error"] is None

    for t, record in enumerate(records):
        assert RECORD_FIELDS <= record.keys()
        mask = mask_of(run, t)
        assert record["remaining_per_layer"] == mask.remaining()
        assert record["remaining"] == sum(record["remaining_per_layer"].values()) == mask.remaining_total()
        assert 0.0 <= record["val_acc"] <= 1.0 and 0.0 <= record["test_acc"] <= 1.0
        assert 0.0 <= record["flow_seconds"] <= record["wall_seconds"]
        weights = weights_of(run, t)
        for name, keep in mask.tensors.items():
            assert not torch.any(weights[name][~keep]), f"pruned weights of {name} are not zero in iteration {t}"

    dense = records[0]
    assert dense["stop_reason"] == "finetune" and dense["epochs"] == config.finetune_epochs
    assert dense["remaining"] == mask_of(run, 0).total()
    for record in records[1:]:
        assert record["stop_reason"] in STOP_REASONS
        assert 1 <= record["epochs"] <= config.prune.max_epochs
        if record["stop_reason"] == "max-epochs":
            assert record["epochs"] == config.prune.max_epochs
        distances = record["distances"]  # incop-if measures after every epoch (check_every = 1)
        assert [d["epoch"] for d in distances] == list(range(1, record["epochs"] + 1))
        assert all(math.isfinite(d["distance"]) and d["distance"] >= 0 for d in distances)
        if record["stop_reason"] == "flow":
            assert distances[-1]["distance"] < config.prune.criterion.epsilon
        assert record["flow_seconds"] > 0

    remaining = [r["remaining"] for r in records]
    assert all(a > b for a, b in zip(remaining, remaining[1:])), remaining
    for t in range(1, len(records)):
        assert mask_of(run, t).is_subset_of(mask_of(run, t - 1))


def test_finished_run_is_not_trained_again(finished_run, monkeypatch):
    config, run = finished_run
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != paths.STATUS}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(incop_core.imp.stages, "train", no_training)
    assert run_pruning(config, run.parent) == run
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != paths.STATUS} == before
    assert read_status(run)["state"] == "finished"


WORKER = """
import json, sys, time
import torch
torch.set_num_threads(1)
from incop_core.imp.config import validate
from incop_core.imp.runner import run_pruning

def slow(kind, info):  # stretches each epoch without changing what is computed
    if kind == "epoch":
        time.sleep(0.25)

config = validate(json.loads(open(sys.argv[1]).read()))
run_pruning(config, sys.argv[2], on_event=slow)
"""


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, one_thread):
    raw = raw_config(iterations=4, max_epochs=2, criterion="fixed-epochs")
    config = validate(raw)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    (tmp_path / "worker.py").write_text(WORKER)
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    run = paths.run_dir(killed_root, config.config_hash())

    worker = subprocess.Popen([sys.executable, str(tmp_path / "worker.py"), str(tmp_path / "config.json"),
                               str(killed_root)], env=ENV_ONE_THREAD, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (paths.iteration_dir(run, 1) / paths.RECORD).exists():
            assert worker.poll() is None, worker.stderr.read().decode()
            assert time.monotonic() < deadline, "the worker never finished iteration 1"
            time.sleep(0.01)
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stderr.close()

    done_at_kill = finished_iterations(run)
    assert done_at_kill[:2] == [0, 1] and 4 not in done_at_kill, done_at_kill
    assert read_status(run)["state"] == "running", "the worker was meant to die mid-run"

    trained = []
    resumed = run_pruning(config, killed_root,
                          on_event=lambda kind, info: (trained.append(info.get("iteration")) if kind == "stage"
                                                       else None))
    assert resumed == run
    assert trained == [t for t in range(1, 5) if t not in done_at_kill], "finished iterations were trained again"
    clean = run_pruning(config, clean_root)

    assert read_status(run)["state"] == "finished"
    assert finished_iterations(run) == finished_iterations(clean) == [0, 1, 2, 3, 4]
    assert [r["remaining"] for r in load_records(run)] == [r["remaining"] for r in load_records(clean)]
    for t in range(5):
        a, b = mask_of(run, t), mask_of(clean, t)
        assert a.tensors.keys() == b.tensors.keys()
        assert all(torch.equal(a.tensors[n], b.tensors[n]) for n in a.tensors), f"masks differ in iteration {t}"
    final_a, final_b = weights_of(run, 4), weights_of(clean, 4)
    assert all(torch.equal(final_a[n], final_b[n]) for n in final_a), "final weights differ"
    assert not list((run / paths.ITERATIONS).glob("*.tmp")), "a half-written iteration folder was left behind"


HOLDER = """
import sys
from pathlib import Path
from incop_core.imp.runlock import locked

with locked(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_second_process_on_the_same_run_is_refused(tmp_path):
    raw = raw_config(iterations=1, max_epochs=1, criterion="fixed-epochs", size=64)
    config_file, root = tmp_path / "config.json", tmp_path / "runs"
    config_file.write_text(json.dumps(raw))
    config = validate(raw)
    run = open_run(config, root)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=ENV_ONE_THREAD)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}

        result = CliRunner().invoke(app, ["prune", "--config", str(config_file), "--runs-dir", str(root)])
        stderr = result.stderr
        assert result.exit_code == 2, f"{result.exception!r} {stderr}"
        assert "Traceback" not in result.stdout + stderr
        message = " ".join(stderr.split())
        assert "being worked on" in message and f"pid {holder.pid}" in message
        with pytest.raises(RunLocked):
            run_pruning(config, root)
        assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
        holder.stdout.close()

    result = CliRunner().invoke(app, ["prune", "--config", str(config_file), "--runs-dir", str(root)])
    assert result.exit_code == 0, f"{result.exception!r} {result.stderr}"
    assert read_status(run)["state"] == "finished"


def test_layer_filter_run_with_round_to_keeps_multiples_and_zero_batchnorms(tmp_path):
    from incop_core.pruning import magnitude
    from incop_core.pruning.masks import coupled_norms
    from incop_core.models.zoo import ModelConfig, build_model

    raw = raw_config(iterations=2, max_epochs=1, criterion="fixed-epochs")
    raw["prune"].update({"scope": "layer-filter", "round_to": 4, "schedule": {"kind": "lth", "fraction": 0.3}})
    run = run_pruning(validate(raw), tmp_path)
    model = build_model(ModelConfig(width=8), (1, 16, 16), 4)
    norms = coupled_norms(model)
    model.load_state_dict(torch.load(paths.iteration_dir(run, 2) / paths.WEIGHTS, weights_only=True))
    mask = mask_of(run, 2)
    for name in list(mask.tensors)[:-1]:
        alive = magnitude.alive_filters(mask.tensors[name])
        assert int(alive.sum()) % 4 == 0 and 0 < int(alive.sum()) < len(alive), name  # 8 -> 4, 16 -> 8, 32 -> 20 -> 12
        if name in norms:
            assert torch.all(norms[name].weight[~alive] == 0) and torch.all(norms[name].bias[~alive] == 0)


def test_dense_plateau_reports_the_fine_tune_as_the_runner_judged_it(finished_run):
    from incop_core.imp.records import dense_plateau, plateau_sentence

    config, run = finished_run
    plateau = dense_plateau(load_records(run))
    assert plateau["epochs"] == config.finetune_epochs == len(plateau["val_acc_per_epoch"])
    gain = plateau["val_gain_last_2_epochs_pp"]
    assert gain is None or plateau["plateaued"] == (gain < 0.3)
    assert "cosine fine-tuning epochs" in plateau_sentence(plateau, 100, 10)
