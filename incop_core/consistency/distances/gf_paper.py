"""The paper's GF distance: ||GF_t - GF*||_2 over per-layer masked-gradient norms (kept for fidelity)."""

from __future__ import annotations

import numpy as np

from incop_core.consistency.distances.base import DISTANCES, GRADIENTS, Snapshot


@DISTANCES.register("gf-paper", (GRADIENTS,), "||GF_t - GF*||_2 (the paper's gradient-flow distance)")
def gf_paper(current: Snapshot, reference: Snapshot) -> float:
    return float(np.linalg.norm(current.gradients - reference.gradients))
