"""Streaming flow estimators agree with the probe estimators; auto epsilon is derived and recorded."""

import numpy as np
import pytest
import torch
from torch import nn

from incop_core.training.optim import OptimConfig
from incop_core.criteria import CRITERIA, CriterionContext, Verdict
from incop_core.datasets.config import DataConfig
from incop_core.datasets.data import load_dataset
from incop_core.datasets.splits import batches
from incop_core.consistency.epsilon import auto_epsilon
from incop_core.consistency.signals import gradient_flow, information_flow
from incop_core.pruning.masks import Mask
from incop_core.models.zoo import ModelConfig, build_model
from incop_core.imp.rundir import load_records
from incop_core.imp.runner import run_pruning
from incop_core.training.train import train

# Stated tolerances, on a fixed model (learning rate ~0, so the weights do not move during the epoch):
IF_ABS_TOL = 0.01  # streamed IF sees train-mode BatchNorm (batch statistics), the probe eval mode
GF_REL_TOL = 0.10  # without BatchNorm the two differ only by how the same images are grouped in batches
GF_ONE_BATCH_TOL = 1e-5  # ...and agree exactly when the whole set is one batch


def frozen(batch_size):
    return OptimConfig(lr=1e-12, momentum=0, weight_decay=0, batch_size=batch_size)


class Keep:
    def check(self, epoch):
        self.stream = epoch.stream
        return Verdict(False)


def _setup(model_fn, batch_size=64):
    torch.manual_seed(0)
    data = load_dataset(DataConfig(name="synthetic", synthetic_size=512, image_size=16), 0)
    model = model_fn(data)
    fixed = CRITERIA.build(CRITERIA.config_for("fixed-epochs")(), CriterionContext(1.0, {}, None))
    mask = Mask.dense(model)
    train(model, data, mask, OptimConfig(lr=0.02), fixed, 2, torch.device("cpu"), seed=0)  # partly trained
    keep = Keep()
    train(model, data, mask, frozen(batch_size), keep, 1, torch.device("cpu"), seed=1, stream=True)
    probe = lambda: batches(data.train, batch_size, data, torch.device("cpu"))  # noqa: E731
    return model, mask, keep.stream, probe


def test_streamed_if_matches_the_probe_if():
    model, mask, stream, probe = _setup(lambda d: build_model(ModelConfig(width=8), d.input_shape, d.num_classes))
    np.testing.assert_allclose(stream["if"], information_flow(model, probe), atol=IF_ABS_TOL)


def _plain(d):
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(),
                         nn.Linear(8 * 16, 16), nn.ReLU(), nn.Linear(16, d.num_classes))


@pytest.mark.parametrize("batch_size,tol", [(64, GF_REL_TOL), (4096, GF_ONE_BATCH_TOL)])
def test_streamed_gf_matches_the_probe_gf_without_batchnorm(batch_size, tol):
    model, mask, stream, probe = _setup(_plain, batch_size)
    np.testing.assert_allclose(stream["gf"], gradient_flow(model, probe, mask), rtol=tol)


def test_auto_epsilon_is_the_median_distance_over_the_epochs_before_best():
    flows = [np.array([0.0]), np.array([0.4]), np.array([0.7]), np.array([0.9]), np.array([1.0]), np.array([0.95])]
    assert auto_epsilon(flows, best=5) == pytest.approx(0.3)  # distances 0.6, 0.3, 0.1 before epoch 5
    assert auto_epsilon(flows, best=1) == pytest.approx(0.7)  # first epoch best: look after it (0.4, 0.7, 0.9)
    assert auto_epsilon(flows[:1], best=1) is None


@pytest.mark.parametrize("kind,estimator", [("incop-if", "stream"), ("incop-gf", "stream"), ("incop-if", "probe")])
def test_auto_epsilon_is_finite_positive_and_recorded(tmp_path, tiny_config, kind, estimator):
    config = tiny_config(criterion={"kind": kind, "epsilon": "auto", "estimator": estimator})
    config = config.model_copy(update={"finetune_epochs": 3})
    records = load_records(run_pruning(config, tmp_path))
    key = f"{kind[-2:]}-stream" if estimator == "stream" else kind[-2:]
    chosen = records[0]["auto_epsilon"][key]
    assert np.isfinite(chosen) and chosen > 0
    assert all(r["epsilon"] == chosen for r in records[1:])
    assert set(records[0]["reference"]) == {"if", "gf", "if-stream", "gf-stream"}
