"""Stopping after a given iteration (the pipeline's fine-tune stage) and resuming from there."""

from incop_core.imp import stages
from incop_core.imp.rundir import finished_iterations, read_status
from incop_core.imp.runner import run_pruning


def test_stop_after_finetune_then_resume_the_rest(tmp_path, tiny_config, monkeypatch):
    config = tiny_config()
    run = run_pruning(config, tmp_path, stop_after=0)
    assert finished_iterations(run) == [0] and read_status(run)["state"] == "paused"
    assert run_pruning(config, tmp_path, stop_after=0) == run  # already there: nothing to do
    calls = []
    real_train = stages.train
    monkeypatch.setattr(stages, "train", lambda *a, **k: calls.append(k.get("keep_best", False)) or real_train(*a, **k))
    run_pruning(config, tmp_path)
    assert calls and not any(calls)  # fine-tuning (the only training that keeps its best epoch) was not repeated
    assert finished_iterations(run) == [0, 1, 2] and read_status(run)["state"] == "finished"
