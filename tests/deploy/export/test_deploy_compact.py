"""Compaction removes zero filters (with coupled inputs, BN entries, residual couplings) and changes no output."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deploy.export.archspec import architecture_spec, rebuild
from deploy.export.compact import compact, max_abs_difference
from deploy.export.layers import has_bias_map
from incop_core.models.zoo import ModelConfig, build_model

TOLERANCE = 1e-4  # max abs, float32 (docs/algorithms.md §5.2)


def _randomise_statistics(model: nn.Module, gen: torch.Generator) -> None:
    """Trained-looking BN statistics and biases, so dead channels emit non-zero constants."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.rand(module.num_features, generator=gen) - 0.5)
                module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
                module.bias.copy_(torch.rand(module.num_features, generator=gen) - 0.3)
            elif isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
                module.bias.copy_(torch.rand(module.bias.shape, generator=gen) * 0.2 - 0.05)


def _kill_filters(layers: list[nn.Module], share: float, gen: torch.Generator) -> None:
    with torch.no_grad():
        for layer in layers:
            dead = torch.rand(layer.weight.shape[0], generator=gen) < share
            layer.weight[dead] = 0


def _masked_resnet18(seed: int = 0) -> nn.Module:
    """resnet18 with random dead filters, and residual-stream channels dead in every layer writing them."""
    gen = torch.Generator().manual_seed(seed)
    model = build_model(ModelConfig(name="resnet18"), (1, 16, 16), 10).eval()
    _randomise_statistics(model, gen)
    _kill_filters([m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][:-1], 0.5, gen)
    with torch.no_grad():  # layer1's stream is written by the stem and both blocks' conv2: kill channels 0-9 in all
        for conv in (model.conv1, model.layer1[0].conv2, model.layer1[1].conv2):
            conv.weight[:10] = 0
    return model


def _masked_vgg16(seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    model = build_model(ModelConfig(name="vgg16"), (1, 16, 16), 10).eval()
    _randomise_statistics(model, gen)
    _kill_filters([m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][:-1], 0.6, gen)
    return model


@pytest.fixture(scope="module")
def resnet():
    model = _masked_resnet18()
    images = torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    return model, images, compact(model, images[:2])


@pytest.fixture(scope="module")
def vgg():
    model = _masked_vgg16()
    images = torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    return model, images, compact(model, images[:2])


def test_resnet18_compaction_gives_the_masked_outputs(resnet):
    model, images, result = resnet
    with torch.no_grad():
        assert float(model(images).abs().max()) > 0.1  # the check below is not vacuous
    assert max_abs_difference(model, result.model, images) <= TOLERANCE
    assert result.channels_removed > 1000
    kept = sum(p.numel() for p in result.model.parameters())
    assert kept < 0.5 * sum(p.numel() for p in model.parameters())


def test_resnet18_residual_stream_is_compacted_only_where_every_writer_is_zero(resnet):
    model, _, result = resnet
    stream = {result.model.conv1.out_channels, result.model.layer1[0].conv2.out_channels,
              result.model.layer1[1].conv2.out_channels, result.model.layer1[0].bn2.num_features,
              result.model.layer2[0].conv1.in_channels, result.model.layer2[0].downsample[0].in_channels}
    assert len(stream) == 1  # every coupled layer agrees
    writers = (model.conv1, model.layer1[0].conv2, model.layer1[1].conv2)
    dead_everywhere = set.intersection(*[{i for i in range(64) if not w.weight[i].any()} for w in writers])
    carried = 1 if "conv1" in result.carriers else 0  # the stream group is rooted at the stem conv
    assert stream.pop() == 64 - len(dead_everywhere) + carried


def test_constants_are_carried_by_one_kept_channel_so_the_graph_stays_plain(resnet):
    _, _, result = resnet
    assert set(result.folded.values()) <= {"bias", "carrier channel"}
    assert result.folded.get("fc") == "bias"  # dead stream channels reach fc as constants through the pooling
    assert result.folded.get("layer1.0.conv1") == "carrier channel"  # a 3x3 conv of a constant is not uniform
    assert not any(has_bias_map(m) for m in result.model.modules())


def test_without_a_common_carrier_the_constants_become_a_bias_map():
    """Two dead stream channels, each constant non-zero at a different reader: no one channel can carry both."""
    model = build_model(ModelConfig(name="resnet18"), (1, 8, 8), 3).eval()
    writers = (model.conv1, model.layer1[0].conv2, model.layer1[1].conv2)
    with torch.no_grad():
        for conv in writers:
            conv.weight[:2] = 0
        model.bn1.bias[:2] = torch.tensor([1.0, -1.0])             # layer1.0.conv1 sees (1, 0)
        model.layer1[0].bn2.bias[:2] = torch.tensor([-5.0, 2.0])   # layer1.1.conv1 sees (0, 2)
        model.layer1[1].bn2.bias[:2] = torch.tensor([-5.0, -5.0])  # layer2 sees (0, 0)
    images = torch.randn(4, 1, 8, 8)
    result = compact(model, images[:2])
    assert "conv1" not in result.carriers and result.removed["conv1"] == 2
    assert result.folded["layer1.0.conv1"].startswith("map") and result.folded["layer1.1.conv1"].startswith("map")
    assert max_abs_difference(model, result.model, images) <= TOLERANCE


def test_vgg16_compaction_gives_the_masked_outputs(vgg):
    model, images, result = vgg
    with torch.no_grad():
        assert float(model(images).abs().max()) > 0.01
    assert max_abs_difference(model, result.model, images) <= TOLERANCE
    assert result.model.classifier[0].out_features < 512
    assert result.model.classifier[3].in_features == result.model.classifier[0].out_features
    assert result.model.classifier[3].out_features == 10  # the class outputs are never removed


@pytest.mark.parametrize("which", ["resnet", "vgg"])
def test_compacted_model_rebuilds_from_its_json_spec_without_pickles(which, request):
    model, images, result = request.getfixturevalue(which)
    name = "resnet18" if which == "resnet" else "vgg16"
    spec = architecture_spec(result.model, ModelConfig(name=name), tuple(images.shape[1:]), 10)
    rebuilt = rebuild(spec, result.model.state_dict())
    assert max_abs_difference(rebuilt, result.model, images) == 0.0


def test_a_layer_whose_filters_are_all_zero_keeps_one_channel():
    model = build_model(ModelConfig(name="small-cnn", width=4), (1, 8, 8), 3).eval()
    _randomise_statistics(model, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.features[4].weight.zero_()
    images = torch.randn(6, 1, 8, 8)
    result = compact(model, images[:2])
    assert result.model.features[4].out_channels == 1
    assert max_abs_difference(model, result.model, images) <= TOLERANCE


def test_nothing_to_remove_leaves_the_model_unchanged():
    model = build_model(ModelConfig(name="small-cnn", width=4), (1, 8, 8), 3).eval()
    result = compact(model, torch.randn(2, 1, 8, 8))
    assert result.channels_removed == 0 and result.folded == {}
    assert [p.shape for p in result.model.parameters()] == [p.shape for p in model.parameters()]
