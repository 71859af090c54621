"""The layers compaction adds: a Conv2d or BatchNorm2d plus the constant map removed channels contributed.

A filter whose weights are all zero still emits a constant per channel (its BN shift, or its bias),
which the next layer sees. Compaction removes the channel and adds that constant contribution back:
into the next layer's bias when it is spatially uniform (1x1 convs, Linear), else as a fixed
(C_out, H, W) map, because zero padding makes a 3x3 conv of a constant differ at the borders.
A map on a conv that feeds a BatchNorm goes after the BatchNorm (scaled by it, eval mode), so the
exporter can still fuse Conv and BatchNorm.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class BiasMapConv2d(nn.Conv2d):
    """Conv2d whose output gets a constant (C_out, H, W) buffer `bias_map` added."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.bias_map


class BiasMapBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose output gets a constant (C, H, W) buffer `bias_map` added."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.bias_map


MAP_CLASSES = {nn.Conv2d: BiasMapConv2d, nn.BatchNorm2d: BiasMapBatchNorm2d}


def has_bias_map(module: nn.Module) -> bool:
    return isinstance(module, tuple(MAP_CLASSES.values()))


def add_bias_map(module: nn.Module, bias_map: torch.Tensor) -> None:
    """Turn a Conv2d or BatchNorm2d into its bias-map class in place (names and parameters unchanged)."""
    if has_bias_map(module):
        module.bias_map += bias_map
        return
    module.__class__ = MAP_CLASSES[type(module)]
    module.register_buffer("bias_map", bias_map.detach().clone())


def add_bias(layer: nn.Module, shift: torch.Tensor) -> None:
    """Add a per-output-channel constant to a Conv2d or Linear, creating its bias if it had none."""
    with torch.no_grad():
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros(shift.shape[0], dtype=layer.weight.dtype))
        layer.bias += shift.to(layer.bias.dtype)


def bn_scale(bn: nn.BatchNorm2d) -> torch.Tensor:
    """The per-channel factor an eval-mode BatchNorm multiplies its input by."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    return scale * bn.weight.detach() if bn.affine else scale


def fold_constant(layer: nn.Module, contribution: torch.Tensor, follower: Optional[nn.BatchNorm2d] = None,
                  tolerance: float = 1e-7) -> str:
    """Fold a constant output contribution ((C,) or (C, H, W)) into `layer`; returns "bias" or "map"."""
    if contribution.dim() == 1:
        add_bias(layer, contribution)
        return "bias"
    per_channel = contribution.mean(dim=(1, 2))
    spread = (contribution - per_channel[:, None, None]).abs().max()
    if float(spread) <= tolerance * (1.0 + float(contribution.abs().max())):
        add_bias(layer, per_channel)
        return "bias"
    if follower is not None:
        add_bias_map(follower, contribution * bn_scale(follower)[:, None, None])
        return "map after BatchNorm"
    add_bias_map(layer, contribution)
    return "map"


def capture_inputs(model: nn.Module, modules: list[nn.Module], example: torch.Tensor) -> dict[nn.Module, tuple]:
    """The positional inputs (detached) each of `modules` received in one forward pass of `example`, in call order."""
    captured: dict[nn.Module, tuple] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out: captured.__setitem__(mod, tuple(t.detach() for t in inp)))
             for m in modules]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return captured
