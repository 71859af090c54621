"""Depth reduction (docs/algorithms.md §5.1): a residual block whose branch ends in an all-zero conv adds only a
constant, so it becomes `relu(shortcut(x) + c)`; the branch's convolutions disappear from the graph."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ConstantBranch(nn.Module):
    """What is left of a residual block whose branch output is the constant `shift` per channel."""

    def __init__(self, shortcut: nn.Module, shift: torch.Tensor) -> None:
        super().__init__()
        self.downsample = shortcut
        self.relu_out = nn.ReLU(inplace=True)
        self.register_buffer("shift", shift.detach().clone().view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu_out(self.downsample(x) + self.shift)


def _branch_end(block: nn.Module) -> tuple[nn.Conv2d, nn.BatchNorm2d] | None:
    """The last conv and its BatchNorm of a torchvision BasicBlock/Bottleneck, else None."""
    for conv, bn in (("conv3", "bn3"), ("conv2", "bn2")):
        if isinstance(getattr(block, conv, None), nn.Conv2d) and isinstance(getattr(block, bn, None), nn.BatchNorm2d):
            return getattr(block, conv), getattr(block, bn)
    return None


def bn_constant(bn: nn.BatchNorm2d) -> torch.Tensor:
    """Eval-mode BatchNorm output for an all-zero input: beta - gamma * mean / sqrt(var + eps)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (bn.bias - bn.running_mean * scale).detach()


def reduce_depth(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A copy of `model` (eval mode) with every zero-ended residual branch replaced; returns the block names."""
    model = copy.deepcopy(model).eval()
    removed = []
    for name, block in list(model.named_modules()):
        end = _branch_end(block) if hasattr(block, "downsample") else None
        if end is None or torch.any(end[0].weight != 0) or (end[0].bias is not None and torch.any(end[0].bias != 0)):
            continue
        shortcut = block.downsample if block.downsample is not None else nn.Identity()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, ConstantBranch(shortcut, bn_constant(end[1])))
        removed.append(name)
    return model, removed
