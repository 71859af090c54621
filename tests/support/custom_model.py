"""A tiny user model for `model.name: tests.support.custom_model:tiny_net` (the README's "Bring your own model"
example)."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, kernel: int, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class TinyNet(nn.Module):
    """conv-bn-relu, a depthwise-separable block added to its input, global average pool, linear."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(in_channels, width, 3), nn.ReLU())
        self.block = nn.Sequential(*conv_bn(width, width, 3, groups=width), nn.ReLU(), *conv_bn(width, width, 1))
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.relu(x + self.block(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def tiny_net(in_channels: int, num_classes: int, width: int = 8) -> TinyNet:
    """incop passes in_channels and num_classes from the data; width comes from model.kwargs."""
    return TinyNet(in_channels, num_classes, width)
