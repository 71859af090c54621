"""`prune.scope: group` (issue 21): coupled channel sets pruned as one, so compaction removes every pruned channel."""

import math

import pytest
import torch
from torch import nn

from deploy.export.compact import compact, max_abs_difference
from incop_core.imp import paths
from incop_core.pruning import magnitude
from incop_core.foundations.errors import ConfigError
from incop_core.pruning.groups import channel_groups
from incop_core.pruning.masks import Mask, coupled_norms, prunable_weights
from incop_core.models.zoo import ModelConfig, build_model
from incop_core.imp.runner import run_pruning


def _randomise_norms(model: nn.Module) -> nn.Module:
    """BatchNorm statistics away from their init, so that a wrongly kept or dropped channel shows in the outputs."""
    gen = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            for tensor, low, high in ((module.running_mean, -0.2, 0.2), (module.running_var, 0.5, 1.5),
                                      (module.weight.data, 0.5, 1.5), (module.bias.data, -0.2, 0.2)):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) * (high - low) + low)
    return model.eval()


def _group_prune(model: nn.Module, example: torch.Tensor, fraction: float = 0.3,
                 scope: str = "group") -> tuple[Mask, int]:
    groups = channel_groups(model, example) if scope == "group" else None
    weights = {n: w.detach() for n, w in prunable_weights(model).items()}
    mask = Mask.dense(model)
    counts = {g: math.floor(fraction * v.numel()) for g, v in magnitude.survivors(weights, mask, scope, groups).items()}
    pruned = magnitude.prune(weights, mask, counts, scope, groups)
    pruned.apply_(model, norms=True)
    return pruned, sum(counts.values())


def _resnet18():
    torch.manual_seed(0)
    return _randomise_norms(build_model(ModelConfig(name="resnet18"), (1, 16, 16), 4)), torch.randn(4, 1, 16, 16)


def test_a_residual_stream_is_one_group_with_every_writer_of_it():
    model, example = _resnet18()
    groups = {g.root: g for g in channel_groups(model, example)}
    stem = groups["conv1.weight"]  # the stem writes the first stage's stream, as does every block's second conv
    assert {"conv1.weight", "layer1.0.conv2.weight", "layer1.1.conv2.weight"} <= set(stem.writers)
    assert "layer2.0.downsample.0.weight" in stem.readers and "fc.weight" not in groups  # never the classes


def test_group_pruning_drops_the_same_channels_in_every_writer_and_compaction_removes_them_all():
    model, example = _resnet18()
    mask, asked = _group_prune(model, example)
    stream = [mask.tensors[n].reshape(64, -1).any(dim=1) for n in ("conv1.weight", "layer1.0.conv2.weight",
                                                                    "layer1.1.conv2.weight")]
    assert (all(torch.equal(stream[0], other) for other in stream[1:])
            and int(stream[0].sum()) == 64 - math.floor(0.3 * 64))
    assert bool(mask.tensors["fc.weight"].any(dim=1).all())
    result = compact(model, example)
    assert result.channels_removed == asked and not result.carriers
    with torch.no_grad():
        scale = float(model(example).abs().max())
    assert max_abs_difference(model, result.model, example) <= 1e-4 * max(scale, 1.0)


def test_layer_filter_zeros_at_the_same_share_buy_far_fewer_removed_channels():
    """The reason for the scope: filters ranked per layer rarely die in every writer of a residual stream."""
    model, example = _resnet18()
    _, asked = _group_prune(model, example, scope="layer-filter")
    per_layer = compact(model, example).channels_removed
    model, example = _resnet18()
    _group_prune(model, example)
    assert per_layer < asked and compact(model, example).channels_removed > per_layer


def test_a_depthwise_conv_follows_its_expansion_and_its_norms_are_zeroed():
    torch.manual_seed(0)
    from torchvision.models import mobilenet_v2

    model = _randomise_norms(mobilenet_v2(weights=None, num_classes=4))
    example = torch.randn(2, 3, 32, 32)
    mask, asked = _group_prune(model, example)
    expand, depthwise = "features.2.conv.0.0.weight", "features.2.conv.1.0.weight"
    alive = mask.tensors[expand].reshape(mask.tensors[expand].shape[0], -1).any(dim=1)
    assert torch.equal(alive, mask.tensors[depthwise].reshape(alive.shape[0], -1).any(dim=1)) and not bool(alive.all())
    norm = coupled_norms(model)[depthwise]
    assert torch.all(norm.weight[~alive] == 0) and torch.all(norm.bias[~alive] == 0)
    assert compact(model, example).channels_removed == asked


def test_round_to_keeps_multiples_per_group(tiny_config):
    model, example = _resnet18()
    groups = channel_groups(model, example)
    weights = {n: w.detach() for n, w in prunable_weights(model).items()}
    mask = Mask.dense(model)
    counts = {g.root: math.floor(0.3 * g.channels) for g in groups}
    mask = magnitude.prune(weights, mask, magnitude.round_filter_counts(counts, mask, 8), "group", groups)
    assert all(int(g.alive(mask).sum()) % 8 == 0 for g in groups)


@pytest.mark.parametrize("schedule", [{"kind": "lth", "fraction": 0.3},
                                      {"kind": "sap", "p": 1.0, "q": 2.0, "eta_r": 0.5}, {"kind": "egp"}])
def test_a_run_in_group_scope_with_every_schedule(tiny_config, tmp_path, schedule):
    config = tiny_config(scope="group", schedule=schedule, criterion={"kind": "fixed-epochs"}, max_epochs=1)
    run = run_pruning(config, tmp_path)
    mask = Mask.load(paths.iteration_dir(run, 2) / paths.MASK)
    first = mask.tensors["features.0.weight"]
    assert mask.remaining_total() < mask.total() and bool(first.reshape(first.shape[0], -1).any(dim=1).any())
    assert bool(mask.tensors["classifier.2.weight"].any(dim=1).all())


def test_a_model_torch_pruning_cannot_trace_is_one_sentence():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4, 2)

        def forward(self, x):
            y = self.conv(x).mean(dim=(2, 3))
            if float(y.sum()) > 1e9:  # data-dependent control flow is fine for tracing by execution...
                y = y * 2
            return self.fc(y.numpy().tolist() and y)  # ...but leaving torch is not

    with pytest.raises(ConfigError, match="prune.scope layer-filter"):
        channel_groups(Branchy(), torch.randn(2, 1, 8, 8))


def test_egp_on_a_model_without_relus_is_a_sentence_not_a_silent_no_op():
    from incop_core.pruning.schedules import SCHEDULES, PruneState

    model = build_model(ModelConfig(name="efficientnet_b0"), (1, 16, 16), 4)
    images = torch.randn(4, 1, 16, 16)
    weights = {n: w.detach() for n, w in prunable_weights(model).items()}
    state = PruneState(weights, Mask.dense(model), "group", 1, model,
                       lambda: [(images, torch.zeros(4, dtype=torch.long))], channel_groups(model, images))
    with pytest.raises(ConfigError, match="prune.schedule lth or sap"):
        SCHEDULES.build(SCHEDULES.config_for("egp")()).prune_counts(state)
