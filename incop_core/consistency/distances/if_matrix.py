"""Whole-matrix IF: relative Frobenius distance of the connectivity matrices, sum_l ||C_l - C_l*||_F^2 / ||C*||^2,
square-rooted."""

from __future__ import annotations

import torch

from incop_core.consistency.distances.base import DISTANCES, FEATURES, Snapshot
from incop_core.consistency.distances.connectivity import connectivity


@DISTANCES.register("if-matrix", (FEATURES,), "relative Frobenius distance of the whole connectivity matrices")
def if_matrix(current: Snapshot, reference: Snapshot) -> float:
    ours, dense = connectivity(current.features), connectivity(reference.features)
    diff = sum(float(torch.sum((c - d) ** 2)) for c, d in zip(ours, dense))
    norm = sum(float(torch.sum(d ** 2)) for d in dense)
    return (diff / max(norm, 1e-12)) ** 0.5
