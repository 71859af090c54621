"""C_l for every consecutive pair of watched layers, from a snapshot's channel means (SPEC 3.4)."""

from __future__ import annotations

import torch

from ..flows import FlowStats


def connectivity(features: list[torch.Tensor]) -> list[torch.Tensor]:
    stats = FlowStats()
    stats.update([f.double() for f in features])
    return stats.connectivity()
