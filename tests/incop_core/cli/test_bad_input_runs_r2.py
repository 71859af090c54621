"""Issue 20 (finding 9, R2 sweep): damaged runs, foreign weights and odd compare or pipeline parameters are one
sentence through the installed command, never a traceback or a silent partial load."""

from __future__ import annotations

import errno
import json
import os
import shutil

import pytest
import torch

from tests.support.bad_inputs import run_incop, expect_user_error
from incop_core.imp import paths
from incop_core.imp.config import validate
from incop_core.foundations.errors import explain
from incop_core.foundations.fileio import copy_folder_atomic
from incop_core.pruning.masks import Mask
from incop_core.models.zoo import SmallCNN
from incop_core.imp.plan import dense_key
from incop_core.imp.runner import run_pruning

RAW = {"data": {"name": "synthetic", "synthetic_size": 64, "image_size": 8}, "model": {"width": 4},
       "finetune_epochs": 1, "prune": {"iterations": 1, "max_epochs": 1, "probe_size": 16, "probe_batch": 16,
                                       "criterion": {"kind": "fixed-epochs"}}}
FULL_DISK = ("import errno, os\n"
             "def _full(fd):\n    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
             "os.fsync = _full\n")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny finished run (and the dense cache beside it) under runs/; tests damage copies of it."""
    root = tmp_path_factory.mktemp("r2") / "runs"
    run = run_pruning(validate(RAW), root)
    return root, run.name


@pytest.fixture
def runs(tmp_path, finished):
    """A fresh copy of the finished run's runs directory, and the run in it."""
    root, name = finished
    copy = tmp_path / "runs"
    shutil.copytree(root, copy)
    return copy, copy / name


def resumable(run):
    """The run as a crash after fine-tuning leaves it: iteration 0 only, no status."""
    shutil.rmtree(paths.iteration_dir(run, 1))
    (run / paths.RECORDS).unlink()
    (run / paths.STATUS).unlink()
    return run


def resume(run):
    return run_incop("prune", "--config", run / paths.CONFIG, "--run-dir", run)


def wider(run, width: int = 8) -> SmallCNN:
    """A small CNN like the run's, of another width."""
    state = torch.load(paths.iteration_dir(run, 0) / paths.WEIGHTS, weights_only=True)
    return SmallCNN(state["features.0.weight"].shape[1], RAW["data"]["image_size"],
                    state["classifier.2.weight"].shape[0], width)


def config_file(tmp_path, **model):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**RAW, "model": {**RAW["model"], **model}}))
    return path


def drop(path, key):
    record = json.loads(path.read_text())
    del record[key]
    path.write_text(json.dumps(record))


# -- model.weights -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["set", "config-file"])
def test_model_weights_given_as_a_list(tmp_path, where):
    args = (["--set", 'model.weights=["a.pt","b.pt"]', "--config", config_file(tmp_path)] if where == "set"
            else ["--config", config_file(tmp_path, weights=["a.pt", "b.pt"])])
    expect_user_error(run_incop("prune", *args, "--runs-dir", tmp_path / "runs"), "model.weights")


def test_weights_of_another_width_are_refused(tmp_path, runs):
    weights = tmp_path / "w8.pt"
    torch.save(wider(runs[1]).state_dict(), weights)
    outcome = run_incop("prune", "--config", config_file(tmp_path, weights=str(weights)),
                        "--runs-dir", tmp_path / "new")
    expect_user_error(outcome, str(weights), "features.0.weight", "(8, 1, 3, 3)")


def test_weights_with_a_missing_key_are_refused(tmp_path, runs):
    state = torch.load(paths.iteration_dir(runs[1], 0) / paths.WEIGHTS, weights_only=True)
    del state["features.1.weight"]
    weights = tmp_path / "partial.pt"
    torch.save(state, weights)
    outcome = run_incop("prune", "--config", config_file(tmp_path, weights=str(weights)),
                        "--runs-dir", tmp_path / "new")
    expect_user_error(outcome, str(weights), "features.1.weight is missing")


def test_non_finite_weights_are_named_before_training(tmp_path, runs):
    state = torch.load(paths.iteration_dir(runs[1], 0) / paths.WEIGHTS, weights_only=True)
    state["classifier.0.weight"][0, 0] = float("nan")
    weights = tmp_path / "nan.pt"
    torch.save(state, weights)
    outcome = run_incop("prune", "--config", config_file(tmp_path, weights=str(weights)),
                        "--runs-dir", tmp_path / "new")
    sentence = expect_user_error(outcome, str(weights), "NaN", "classifier.0.weight", "before any training")
    assert "learning rate" not in sentence


# -- a damaged run directory ---------------------------------------------------------------------------------------

def test_resuming_over_weights_of_another_width(runs):
    run = resumable(runs[1])
    torch.save(wider(run).state_dict(), paths.iteration_dir(run, 0) / paths.WEIGHTS)
    expect_user_error(resume(run), str(paths.iteration_dir(run, 0) / paths.WEIGHTS), "features.0.weight",
                      f"delete {paths.iteration_dir(run, 0)}")


def test_resuming_over_non_finite_weights(runs):
    run = resumable(runs[1])
    weights = paths.iteration_dir(run, 0) / paths.WEIGHTS
    state = torch.load(weights, weights_only=True)
    state["features.0.weight"][0] = float("inf")
    torch.save(state, weights)
    sentence = expect_user_error(resume(run), str(weights), "NaN or infinite", f"delete {weights.parent}")
    assert "learning rate" not in sentence


def test_resuming_over_a_misshaped_mask(runs):
    run = resumable(runs[1])
    Mask.dense(wider(run)).save(paths.iteration_dir(run, 0) / paths.MASK)
    expect_user_error(resume(run), str(paths.iteration_dir(run, 0) / paths.MASK), "features.0.weight",
                      f"delete {paths.iteration_dir(run, 0)}")


def test_a_record_without_stop_reason(runs):
    record = paths.iteration_dir(runs[1], 1) / paths.RECORD
    drop(record, "stop_reason")
    expect_user_error(run_incop("report", runs[1]), str(record), f"delete {record.parent}")


def test_a_dense_record_without_auto_epsilon(runs):
    run = resumable(runs[1])
    record = paths.iteration_dir(run, 0) / paths.RECORD
    drop(record, "auto_epsilon")
    expect_user_error(resume(run), str(record), "auto_epsilon", f"delete {record.parent}")


def test_a_corrupt_dense_cache_is_named_not_the_copy(tmp_path, runs):
    root, run = runs
    cache = paths.dense_cache(run, dense_key(validate(RAW)))
    (cache / paths.WEIGHTS).write_bytes(b"not a checkpoint")
    raw = {**RAW, "prune": {**RAW["prune"], "max_epochs": 2}}  # another run, fine-tuned the same way
    (tmp_path / "other.json").write_text(json.dumps(raw))
    outcome = run_incop("prune", "--config", tmp_path / "other.json", "--runs-dir", root)
    sentence = expect_user_error(outcome, str(cache / paths.WEIGHTS), f"delete the shared dense cache {cache}")
    assert paths.ITERATIONS not in sentence


def test_export_of_a_run_without_iterations(runs):
    run = runs[1]
    shutil.rmtree(run / paths.ITERATIONS)
    expect_user_error(run_incop("export", run), str(run / paths.ITERATIONS), f"--run-dir {run}")


# -- compare and pipeline parameters -------------------------------------------------------------------------------

@pytest.mark.parametrize("seeds, mention", [("", "at least one seed"), (",", "at least one seed"),
                                            ("0,0", "lists 0 more than once"), ("1e23", "integers"),
                                            ("100000000000000000000000", "between 0 and")],
                         ids=["empty", "comma", "duplicate", "float", "huge"])
def test_compare_seeds(tmp_path, seeds, mention):
    outcome = run_incop("compare", "--seeds", seeds, "--dataset", "synthetic", "--runs-dir", tmp_path)
    expect_user_error(outcome, "--seeds", mention)
    assert not any(tmp_path.iterdir()), "refused before any run"


def test_pipeline_refuses_an_unknown_storage_protocol(tmp_path):
    outcome = run_incop("pipeline", "--set", "storage=foo://bucket", "--set", f"runs_dir={tmp_path / 'runs'}",
                        "--set", f"registry={tmp_path / 'registry'}")
    expect_user_error(outcome, "storage", "foo://")
    assert not any(tmp_path.iterdir()), "refused before any work"


def test_pipeline_warns_that_it_leaves_storage_unused():
    from flows.cli import load_params, unused_storage

    assert unused_storage(load_params(None, [])) is None
    warning = unused_storage(load_params(None, ["storage=memory://stages"]))
    assert "memory://stages" in warning and "work-pool" in warning


# -- a full disk ---------------------------------------------------------------------------------------------------

def test_a_full_disk_names_the_file_being_written(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(FULL_DISK)  # every fsync fails as on a full disk
    outcome = run_incop("prune", "--config", config_file(tmp_path), "--runs-dir", tmp_path / "runs",
                        env={"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "site"),
                                                                         os.environ.get("PYTHONPATH")]))})
    hash_ = validate(RAW).config_hash()
    expect_user_error(outcome, f"cannot write {tmp_path / 'runs' / hash_ / paths.CONFIG}", "disk is full")


def test_a_full_disk_while_copying_a_folder_names_the_copy(tmp_path, monkeypatch):
    source = tmp_path / "source"
    source.mkdir()
    (source / "weights.pt").write_bytes(b"x")

    def full(src, dst, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(src))  # copyfile's fast path names the source

    monkeypatch.setattr("incop_core.foundations.fileio.shutil.copyfile", full)
    with pytest.raises(OSError) as raised:
        copy_folder_atomic(source, tmp_path / "target")
    sentence = explain(raised.value)
    assert "disk is full" in sentence and str(tmp_path / "target" / "weights.pt") in sentence


@pytest.mark.parametrize("damage", ["garbage", "wrong shapes"])
def test_a_damaged_settle_file_is_named(tmp_path, damage):
    raw = {**RAW, "prune": {**RAW["prune"], "iterations": 2, "criterion": {"kind": "incop"}}}
    run = resumable(run_pruning(validate(raw), tmp_path / "runs"))
    settle = paths.iteration_dir(run, 0) / paths.SETTLE
    assert settle.is_file()
    if damage == "garbage":
        settle.write_bytes(b"not a torch file")
    else:
        torch.save({name: torch.zeros(1) for name in torch.load(settle, weights_only=True)}, settle)
    expect_user_error(resume(run), str(settle), "delete")


def test_weights_that_are_a_fifo_and_a_set_value_too_deep_to_parse(tmp_path):
    fifo = tmp_path / "weights.pt"
    os.mkfifo(fifo)
    tiny = ["prune", "--dataset", "synthetic", "--iterations", "1", "--max-epochs", "1", "--finetune-epochs", "1",
            "--set", "data.synthetic_size=64", "--set", "model.width=4", "--runs-dir", tmp_path / "runs"]
    expect_user_error(run_incop(*tiny, "--set", f"model.weights={fifo}", timeout=60), "FIFO", "model.weights")
    expect_user_error(run_incop(*tiny, "--set", "prune.probe_size=" + "[" * 5000 + "]" * 5000), "nests too deeply")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("weights.pt"))
