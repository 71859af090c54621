"""C_l for every consecutive pair of watched layers, from a snapshot's channel means (docs/algorithms.md §4.3)."""

from __future__ import annotations

import numpy as np
import torch

from incop_core.consistency.signals import FlowStats


def connectivity(features: list[torch.Tensor]) -> list[torch.Tensor]:
    stats = FlowStats()
    stats.update([f.double() for f in features])
    return stats.connectivity()


def information_flow_vector(features: list[torch.Tensor]) -> np.ndarray:
    """The paper's IF: the mean of each connectivity matrix C_l."""
    return np.array([c.mean().item() for c in connectivity(features)])
