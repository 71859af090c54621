"""The dense noise of a shared fine-tuning (docs/algorithms.md §4.3): reused as is at the same retraining rate,
measured again (one epoch, the fine-tuned weights unchanged) at another one or when the cache does not say."""

import json

import torch

from incop_core.imp import noise, paths, stages
from incop_core.imp.config import validate
from incop_core.imp.noise import NOISE_AT
from incop_core.imp.plan import dense_key
from incop_core.imp.rundir import load_records
from incop_core.imp.runner import run_pruning


def _config(tiny_config, **optim):
    raw = tiny_config().model_dump(mode="json")
    raw["optim"].update(optim)
    return validate(raw)


def _run(config, runs, monkeypatch):
    calls = []
    real_train = stages.train
    for module in (stages, noise):  # the iterations' retraining, the noise epoch
        monkeypatch.setattr(module, "train", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    run = run_pruning(config, runs)
    for module in (stages, noise):
        monkeypatch.setattr(module, "train", real_train)
    weights = torch.load(paths.iteration_dir(run, 0) / paths.WEIGHTS, weights_only=True)
    return load_records(run)[0], weights, len(calls)


def test_a_shared_fine_tuning_is_recalibrated_only_at_another_retraining_rate(tmp_path, tiny_config, monkeypatch):
    first, dense, _ = _run(_config(tiny_config), tmp_path, monkeypatch)
    assert first[NOISE_AT] == {"lr": 0.002}

    same, weights, calls = _run(_config(tiny_config, retrain_schedule="cosine"), tmp_path, monkeypatch)
    assert calls == 2 and same["noise"] == first["noise"]  # the two iterations; a cosine rate starts at retrain_lr

    other, weights, calls = _run(_config(tiny_config, retrain_lr=0.05), tmp_path, monkeypatch)
    assert calls == 3 and other[NOISE_AT] == {"lr": 0.05} and other["noise"] != first["noise"]
    assert all(torch.equal(weights[k], dense[k]) for k in dense)  # the same fine-tuned network
    assert other["reference"] == first["reference"] and other["dense_best_val_acc"] == first["dense_best_val_acc"]
    assert (paths.iteration_dir(run_pruning(_config(tiny_config, retrain_lr=0.05), tmp_path), 0)
            / paths.SETTLE).is_file()


def test_a_cache_from_before_the_record_said_its_rate_is_recalibrated(tmp_path, tiny_config, monkeypatch):
    config = _config(tiny_config)
    first, _, _ = _run(config, tmp_path, monkeypatch)
    cached = paths.dense_cache(tmp_path / "x", dense_key(config)) / paths.RECORD
    record = json.loads(cached.read_text())
    del record[NOISE_AT]
    cached.write_text(json.dumps(record))
    again, _, calls = _run(_config(tiny_config, retrain_schedule="cosine"), tmp_path, monkeypatch)
    assert calls == 3 and again[NOISE_AT] == {"lr": 0.002}
