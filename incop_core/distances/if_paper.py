"""The paper's IF summary: the mean of each connectivity matrix C_l, compared with ||IF_t - IF*||_2.

Kept for fidelity; it fails the discrimination test (a random network scores under 0.11)."""

from __future__ import annotations

import numpy as np

from . import DISTANCES, FEATURES, Snapshot
from .connectivity import connectivity


@DISTANCES.register("if-paper", (FEATURES,), "||IF_t - IF*||_2 with IF_l the mean of C_l (the paper's summary)")
def if_paper(current: Snapshot, reference: Snapshot) -> float:
    ours = np.array([c.mean().item() for c in connectivity(current.features)])
    dense = np.array([c.mean().item() for c in connectivity(reference.features)])
    return float(np.linalg.norm(ours - dense))
