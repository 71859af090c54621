"""Which layers pruning and the flow signals see, stated once (docs/algorithms.md §1).

Prunable: every Conv2d and Linear whose weight has more than one dimension. The flow signals and the ReLU map also
leave out residual shortcut convolutions, which their names give away."""

from __future__ import annotations

from torch import nn

SHORTCUT_WORDS = ("downsample", "shortcut", "projection")


def prunable(module: nn.Module) -> bool:
    return isinstance(module, (nn.Conv2d, nn.Linear)) and module.weight.dim() > 1


def is_shortcut(name: str) -> bool:
    return any(word in name for word in SHORTCUT_WORDS)


def flow_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Prunable layers outside residual shortcuts, in named_modules() order: those whose outputs IF watches."""
    return [(name, module) for name, module in model.named_modules() if prunable(module) and not is_shortcut(name)]
