"""Per-layer linear CKA (Kornblith et al. 2019) of each layer's channel means with the dense layer's: 1 - mean CKA."""

from __future__ import annotations

import torch

from incop_core.consistency.distances.base import DISTANCES, FEATURES, Snapshot


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on centred (samples x channels) matrices; 0 for a constant layer."""
    x, y = x.double() - x.double().mean(0), y.double() - y.double().mean(0)
    denom = torch.linalg.norm(x.T @ x) * torch.linalg.norm(y.T @ y)
    return float(torch.linalg.norm(y.T @ x) ** 2 / denom) if denom > 0 else 0.0


@DISTANCES.register("cka", (FEATURES,), "1 - mean over layers of linear CKA with the dense layer")
def cka(current: Snapshot, reference: Snapshot) -> float:
    scores = [linear_cka(c, d) for c, d in zip(current.features, reference.features)]
    return 1.0 - sum(scores) / len(scores)
