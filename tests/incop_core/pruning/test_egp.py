"""EGP: entropy, water-filling, the ReLU rewrite and the ReLU-to-layer map (docs/algorithms.md §3.3)."""

import math

import pytest
import torch

from incop_core.pruning.entropy import binary_entropy, channel_on_fraction, layer_entropies, water_fill
from incop_core.pruning.masks import Mask, prunable_weights
from incop_core.models.zoo import ModelConfig, build_model
from incop_core.models.relus import distinct_relus, relu_map
from incop_core.pruning.schedules import SCHEDULES, PruneState


def test_entropy_of_all_on_all_off_and_half_on_channels():
    x = torch.zeros(8, 3, 4, 4)
    x[:, 0] = 1.0  # always on
    x[:, 1] = -1.0  # always off
    x[:4, 2], x[4:, 2] = 1.0, -1.0  # on half the time
    on, total = channel_on_fraction(x)
    assert binary_entropy(on / total).tolist() == pytest.approx([0.0, 0.0, 1.0])


def test_water_filling_spends_the_budget_and_zeroes_whole_layers():
    survivors = {"a": 10, "b": 1000, "c": 500, "d": 40}
    scores = {"a": 9.0, "b": 1.0, "c": 1.2, "d": 5.0}  # a and d attract most of the budget
    budget = 600.0
    counts = water_fill(budget, scores, survivors)
    assert all(counts[n] <= survivors[n] for n in counts)
    assert counts["a"] == 10 and counts["d"] == 40  # offered more than they hold: zeroed entirely
    assert budget - len(survivors) < sum(counts.values()) <= budget  # all of B, up to rounding down
    # the rest is re-allocated by softmax over the remaining wait list
    rest = budget - 50
    share_b = math.exp(1.0) / (math.exp(1.0) + math.exp(1.2))
    assert counts["b"] == math.floor(rest * share_b)


def test_water_filling_can_zero_everything_when_the_budget_covers_it():
    assert water_fill(100.0, {"a": 1.0, "b": 2.0}, {"a": 30, "b": 20}) == {"a": 30, "b": 20}


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_distinct_relus_leave_outputs_and_state_unchanged(name):
    from torchvision import models

    torch.manual_seed(0)
    plain = getattr(models, name)(weights=None, num_classes=5).eval()
    rewritten = distinct_relus(getattr(models, name)(weights=None, num_classes=5)).eval()
    rewritten.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(plain(x), rewritten(x))
    assert set(plain.state_dict()) == set(rewritten.state_dict())
    relu_map(rewritten, x)  # every ReLU is called once, else this raises


def test_the_relu_after_a_residual_addition_maps_to_the_blocks_last_conv():
    model = build_model(ModelConfig(name="resnet18"), (1, 16, 16), 4)
    mapping = relu_map(model, torch.randn(2, 1, 16, 16))
    assert mapping["layer2.0.relu_out"] == "layer2.0.conv2.weight"  # not the downsample conv called just before
    assert mapping["layer2.0.relu"] == "layer2.0.conv1.weight"
    assert mapping["relu"] == "conv1.weight"
    assert not any("downsample" in target for target in mapping.values())


def test_egp_gives_the_budget_to_layers_with_entropy_and_prunes_half_their_survivors():
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8), (1, 16, 16), 4).eval()
    images = torch.randn(64, 1, 16, 16)
    probe = lambda: [(images[i:i + 32], None) for i in (0, 32)]  # noqa: E731
    entropy = layer_entropies(model, probe)
    # the classifier has no ReLU
    assert set(entropy) == {"features.0.weight", "features.4.weight", "classifier.0.weight"}
    weights = {n: w.detach() for n, w in prunable_weights(model).items()}
    counts = SCHEDULES.build(SCHEDULES.config_for("egp")()).prune_counts(
        PruneState(weights, Mask.dense(model), "global", 1, model, probe))
    live = sum(weights[n].numel() for n in entropy if entropy[n] > 0)
    assert 0.5 * live - len(entropy) < sum(counts.values()) <= 0.5 * live


def test_relu_states_report_always_on_and_always_off_layers():
    from torch import nn

    from incop_core.pruning.entropy import relu_states

    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor([1.0, 2.0, 3.0]))  # always on: the first layer acts linearly
        model[2].weight.zero_()
        model[2].bias.fill_(-1.0)  # always off: the second layer is dead
    x = torch.randn(16, 4)
    report = relu_states(model, lambda: [(x, None)])
    assert report["0.weight"]["removable"] == "linear" and report["0.weight"]["always_on"] == 3
    assert report["2.weight"]["removable"] == "dead" and report["2.weight"]["entropy"] == 0.0
