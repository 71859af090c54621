"""ReLUs as distinct module calls, each mapped to the prunable layer whose output it rectifies
(docs/algorithms.md §3.3)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from incop_core.foundations.errors import ConfigError
from incop_core.models.layers import is_shortcut, prunable


def _basic_forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    return self.relu_out(self.bn2(self.conv2(out)) + identity)


def _bottleneck_forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu_mid(self.bn2(self.conv2(out)))
    return self.relu_out(self.bn3(self.conv3(out)) + identity)


def distinct_relus(model: nn.Module) -> nn.Module:
    """Give torchvision's BasicBlock/Bottleneck one ReLU module per call; outputs and state dict unchanged."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    for block in model.modules():
        if type(block) is BasicBlock:
            block.relu_out = nn.ReLU(inplace=True)
            block.__class__ = type("DistinctReLUBasicBlock", (BasicBlock,), {"forward": _basic_forward})
        elif type(block) is Bottleneck:
            block.relu_mid, block.relu_out = nn.ReLU(inplace=True), nn.ReLU(inplace=True)
            block.__class__ = type("DistinctReLUBottleneck", (Bottleneck,), {"forward": _bottleneck_forward})
    return model


def relu_map(model: nn.Module, example: torch.Tensor) -> dict[str, str]:
    """ReLU module name -> the weight name of the last non-shortcut conv/linear called before it."""
    calls: list[tuple[str, nn.Module]] = []
    handles = [m.register_forward_pre_hook(lambda mod, _i, n=n: calls.append((n, mod)))
               for n, m in model.named_modules()
               if isinstance(m, nn.ReLU) or (prunable(m) and not is_shortcut(n))]
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            model(example)
            model.train(was)
    finally:
        for handle in handles:
            handle.remove()
    mapping, last = {}, None
    for name, module in calls:
        if isinstance(module, nn.ReLU):
            if name in mapping:
                raise ConfigError(f"ReLU module {name!r} is called more than once; EGP needs one ReLU module per call")
            if last is not None:
                mapping[name] = f"{last}.weight"
        else:
            last = name
    return mapping


@contextmanager
def relu_inputs(model: nn.Module, names: list[str], sink: Callable[[str, torch.Tensor], None]) -> Iterator[None]:
    """Feed each named ReLU's input to `sink` (a pre-hook: in-place ReLUs have not overwritten it yet)."""
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_pre_hook(lambda _m, inputs, n=n: sink(n, inputs[0])) for n in names]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
