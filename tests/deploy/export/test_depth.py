"""Branch-to-identity compaction is exact on a ResNet with zeroed blocks."""

import torch

from deploy.export.depth import ConstantBranch, reduce_depth
from incop_core.models.zoo import ModelConfig, build_model


def _trained_looking(model):
    """Non-trivial BatchNorm statistics, so the folded constant matters."""
    torch.manual_seed(0)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


def test_zeroed_blocks_become_constant_branches_with_identical_outputs():
    model = _trained_looking(build_model(ModelConfig(name="resnet18"), (1, 16, 16), 4))
    with torch.no_grad():
        model.layer1[1].conv2.weight.zero_()  # identity shortcut
        model.layer3[0].conv2.weight.zero_()  # projection shortcut (downsample kept)
        model.layer3[0].conv1.weight.zero_()
    x = torch.randn(8, 1, 16, 16)
    reduced, removed = reduce_depth(model)
    assert removed == ["layer1.1", "layer3.0"]
    assert (isinstance(reduced.layer1[1], ConstantBranch)
            and isinstance(reduced.layer3[0].downsample, torch.nn.Sequential))
    with torch.no_grad():
        assert float((model(x) - reduced(x)).abs().max()) <= 1e-5
    convs = lambda m: sum(isinstance(c, torch.nn.Conv2d) for c in m.modules())  # noqa: E731
    assert convs(reduced) == convs(model) - 4


def test_blocks_with_live_branches_are_left_alone():
    model = _trained_looking(build_model(ModelConfig(name="resnet18"), (1, 16, 16), 4))
    reduced, removed = reduce_depth(model)
    assert removed == [] and not any(isinstance(m, ConstantBranch) for m in reduced.modules())


def test_a_depth_reduced_model_rebuilds_from_its_json_spec_without_pickles():
    from deploy.export.archspec import architecture_spec, rebuild

    config = ModelConfig(name="resnet18")
    model = _trained_looking(build_model(config, (1, 16, 16), 4))
    with torch.no_grad():
        model.layer2[1].conv2.weight.zero_()
    reduced, removed = reduce_depth(model)
    spec = architecture_spec(reduced, config, (1, 16, 16), 4)
    assert spec["constant_branches"] == {"layer2.1": 128}
    rebuilt = rebuild(spec, reduced.state_dict())
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), reduced(x))
