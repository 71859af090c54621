"""A training split that leaves one image for the last batch: BatchNorm cannot train on a batch of one, so the lone
image joins the batch before it, and the step count the criteria and budgets use agrees."""

import pytest
import torch

from incop_core.criteria import CRITERIA
from incop_core.datasets.config import DataConfig
from incop_core.datasets.data import load_dataset
from incop_core.datasets.splits import batches
from incop_core.models.zoo import ModelConfig, build_model
from incop_core.pruning.masks import Mask
from incop_core.training.optim import OptimConfig
from incop_core.training.train import steps_per_epoch, train

DATA = load_dataset(DataConfig(name="synthetic", synthetic_size=160, image_size=16), seed=0)  # 144 training images


@pytest.mark.parametrize("batch_size", [1, 2, 7, 11, 13, 48, 143, 144, 200])
def test_training_batches_hold_every_image_once_never_one_alone_and_match_the_step_count(batch_size):
    sizes = [len(labels) for _, labels in batches(DATA.train, batch_size, DATA, torch.device("cpu"),
                                                  torch.Generator().manual_seed(0), training=True)]
    assert sum(sizes) == len(DATA.train) and len(sizes) == steps_per_epoch(DATA, batch_size)
    assert batch_size == 1 or min(sizes) > 1
    plain = [len(labels) for _, labels in batches(DATA.train, batch_size, DATA, torch.device("cpu"))]
    assert max(plain) <= batch_size  # evaluation keeps plain batches


def test_a_network_with_pooled_batchnorm_trains_when_one_image_is_left_over():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mobilenet_v3_small", width=8), DATA.input_shape, DATA.num_classes)
    fixed = CRITERIA.build(CRITERIA.config_for("fixed-epochs")(), None)
    result = train(model, DATA, Mask.dense(model), OptimConfig(batch_size=len(DATA.train) - 1), fixed, 1,
                   torch.device("cpu"), seed=0)  # 143 + 1 images: the squeeze-excitation BN sees 1x1 maps
    assert result.epochs == 1 and result.history[-1]["train_loss"] is not None
