"""One probe measurement of a network: the passes a consistency signal needs, and no more (docs/algorithms.md §4.3)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from incop_core.consistency.distances import FEATURES, GRADIENTS, LOGITS, Snapshot
from incop_core.consistency.signals import Batches, channel_means, gradient_flow, probe_mode, record_outputs
from incop_core.models.layers import flow_layers
from incop_core.pruning.masks import Mask


def take_snapshot(model: nn.Module, probe: Batches, mask: Mask, needs: Iterable[str]) -> Snapshot:
    """Logits and per-layer channel means from one eval-mode pass; GF from train-mode passes (BN frozen)."""
    needs = set(needs)
    logits, features = None, None
    if needs & {LOGITS, FEATURES}:
        logits, features = _forward(model, probe, FEATURES in needs)
    gradients = gradient_flow(model, probe, mask) if GRADIENTS in needs else None
    return Snapshot(logits if LOGITS in needs else None, features, gradients)


def _forward(model: nn.Module, probe: Batches, with_features: bool) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    layers = [module for _, module in flow_layers(model)] if with_features else []
    columns: list[list[torch.Tensor]] = [[] for _ in layers]
    outputs: list[torch.Tensor] = []

    def keep(k: int, out: torch.Tensor) -> None:
        columns[k].append(channel_means(out).float().cpu())

    with probe_mode(model, train=False), torch.no_grad(), record_outputs(layers, keep):
        for images, _ in probe():
            outputs.append(model(images).float().cpu())
    features = [torch.cat(c) for c in columns] if with_features else None
    return torch.cat(outputs), features
