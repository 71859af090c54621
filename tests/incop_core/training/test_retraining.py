"""Retraining as the InCoP criterion drives it: checks from epoch 0, step checks, fractional budgets, both
rewinds, the shared fine-tuning and the dense network's noise (docs/algorithms.md §1, §4.3, §4.5)."""

import pytest
import torch

from incop_core.imp import paths, stages
from incop_core.imp.config import validate
from incop_core.training.optim import OptimConfig
from incop_core.foundations.errors import ConfigError
from incop_core.criteria import CRITERIA, CriterionContext, EpochRecord, Verdict
from incop_core.datasets.config import DataConfig
from incop_core.datasets.data import load_dataset
from incop_core.consistency.distances import DISTANCES
from incop_core.pruning.masks import Mask
from incop_core.models.zoo import ModelConfig, build_model
from incop_core.imp.rundir import load_records
from incop_core.imp.runner import run_pruning
from incop_core.training.train import CheckPlan, steps_per_epoch, train
from incop_core.foundations.hashdump import hashed_dump

DATA = load_dataset(DataConfig(name="synthetic", synthetic_size=160, image_size=16), seed=0)  # 144 training images


class Recorder:
    """Answers go, or stop at `stop_at` epochs; keeps the epochs it was asked at."""

    def __init__(self, stop_at=None):
        self.asked, self.stop_at = [], stop_at

    def check(self, epoch: EpochRecord) -> Verdict:
        self.asked.append(epoch.epoch)
        return Verdict(self.stop_at is not None and epoch.epoch >= self.stop_at, "flow")


def _train(criterion, max_epochs, plan, batch_size=32):
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8), DATA.input_shape, DATA.num_classes)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(model, DATA, Mask.dense(model), OptimConfig(batch_size=batch_size), criterion, max_epochs,
                   torch.device("cpu"), seed=0, plan=plan)
    return model, start, result


def test_a_network_consistent_at_epoch_zero_retrains_no_step():
    model, start, result = _train(Recorder(stop_at=0), 3, CheckPlan(at_start=True))
    assert result.epochs == 0 and result.stop_reason == "flow" and [h["epoch"] for h in result.history] == [0]
    assert all(torch.equal(start[k], v) for k, v in model.state_dict().items())


def test_step_checks_see_fractional_epochs_and_a_fractional_budget_trains_whole_steps():
    assert steps_per_epoch(DATA, 32) == 5  # 144 images in batches of 32
    recorder = Recorder()
    _, _, result = _train(recorder, 1.6, CheckPlan(at_start=True, every_steps=2))
    assert recorder.asked == [0, 0.4, 0.8, 1, 1.2, 1.6]  # every 2 steps, epoch ends, and the budget's last step
    assert result.epochs == pytest.approx(1.6) and result.stop_reason == "max-epochs"
    stopper = Recorder(stop_at=0.8)
    _, _, result = _train(stopper, 3, CheckPlan(every_steps=2))
    assert stopper.asked == [0.4, 0.8] and result.epochs == pytest.approx(0.8)


def test_check_every_epochs_skips_epochs_but_always_checks_the_last():
    recorder = Recorder()
    _train(recorder, 5, CheckPlan(every_epochs=2))
    assert recorder.asked == [2, 4, 5]


@pytest.mark.parametrize("rewind", ["finetuned", "previous"])
def test_rewind_restarts_from_the_fine_tuned_or_the_previous_weights(tmp_path, tiny_config, rewind):
    config = tiny_config(rewind=rewind, criterion={"kind": "fixed-epochs", "epochs": 0})  # no training after pruning
    run = run_pruning(config, tmp_path)
    weights = [torch.load(paths.iteration_dir(run, t) / paths.WEIGHTS, weights_only=True) for t in (0, 1, 2)]
    mask = Mask.load(paths.iteration_dir(run, 2) / paths.MASK)
    source = weights[0] if rewind == "finetuned" else weights[1]
    for name, keep in mask.tensors.items():
        assert torch.equal(weights[2][name], source[name] * keep)
    assert [r["epochs"] for r in load_records(run)[1:]] == [0, 0]


def test_runs_that_fine_tune_alike_share_one_fine_tuning(tmp_path, tiny_config, monkeypatch):
    first = run_pruning(tiny_config(), tmp_path)
    calls = []
    real_train = stages.train
    monkeypatch.setattr(stages, "train", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    second = run_pruning(tiny_config(criterion={"kind": "fixed-epochs"}), tmp_path)
    assert second != first and len(calls) == 2  # the two pruning iterations only
    dense = [torch.load(paths.iteration_dir(r, 0) / paths.WEIGHTS, weights_only=True) for r in (first, second)]
    assert all(torch.equal(dense[0][k], dense[1][k]) for k in dense[0])


def test_fine_tuning_records_the_dense_networks_noise_for_every_signal(tmp_path, tiny_config):
    dense = load_records(run_pruning(tiny_config(iterations=1), tmp_path))[0]
    assert set(DISTANCES.names()) | {"val_acc"} <= set(dense["noise"])
    assert all(v is not None and v >= 0 for v in dense["noise"].values())
    assert dense["noise"]["disagreement"] <= 1 and "plateau_gain_pp" in dense


def test_incop_records_its_epsilon_and_the_fresh_distance_at_epoch_zero(tmp_path, tiny_config):
    records = load_records(run_pruning(tiny_config(criterion={"kind": "incop", "distance": "kl"}), tmp_path))
    for record in records[1:]:
        assert record["history"][0]["epoch"] == 0 and record["distances"][0]["epoch"] == 0
        assert (record["epsilon"] > 0
                and record["stop_reason"] in {"settled", "flow", "plateau", "accuracy", "max-epochs"})


def test_accuracy_tolerance_auto_is_the_dense_networks_own_noise():
    context = CriterionContext(0.9, {}, None, noise={"val_acc": 0.02})
    auto = CRITERIA.build(CRITERIA.config_for("accuracy")(tolerance="auto"), context)
    exact = CRITERIA.build(CRITERIA.config_for("accuracy")(), context)
    assert auto.target == pytest.approx(0.88) and exact.target == pytest.approx(0.9)


def test_fine_tuning_stops_at_the_plateau_only_with_a_constant_learning_rate(tmp_path, tiny_config):
    raw = tiny_config().model_dump(mode="json")
    raw.update(finetune_epochs=30, finetune_plateau_pp=50.0)  # any 2 epochs gain less than 50 pp: stop at epoch 3
    with pytest.raises(ConfigError, match="optim.schedule=constant"):
        validate(raw)
    raw["optim"]["schedule"] = "constant"
    dense = load_records(run_pruning(validate(raw), tmp_path, stop_after=0))[0]
    assert dense["epochs"] == 3 and dense["stop_reason"] == "plateau" and dense["plateau"] in (True, False)


def test_runs_that_differ_only_in_retraining_lr_share_the_dense_network_and_others_do_not():
    from incop_core.imp.plan import dense_key

    base = {"data": {"name": "synthetic"}, "model": {"name": "small-cnn"}}
    key = dense_key(validate(base))
    assert dense_key(validate({**base, "optim": {"retrain_lr": 0.01}})) == key
    assert dense_key(validate({**base, "optim": {"retrain_schedule": "cosine"}})) == key
    assert dense_key(validate({**base, "optim": {"lr": 0.01}})) != key
    assert dense_key(validate({**base, "finetune_epochs": 3})) != key


def test_cosine_retraining_decays_from_retrain_lr_and_the_default_keeps_old_run_hashes():
    constant = validate({"data": {"name": "synthetic"}})
    assert "retrain_schedule" not in hashed_dump(constant)["optim"]  # hashes from before the field hold
    assert constant.model_dump(mode="json")["optim"]["retrain_schedule"] == "constant"  # every dump holds it
    assert constant.optim.retraining().lr_at(5, 5) == constant.optim.retraining().lr == 0.002
    cosine = validate({"data": {"name": "synthetic"}, "optim": {"retrain_lr": 0.01, "retrain_schedule": "cosine"}})
    assert cosine.config_hash() != constant.config_hash()
    rates = [cosine.optim.retraining().lr_at(e, 10) for e in range(1, 11)]
    assert rates[0] == 0.01 and all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] < 0.001
