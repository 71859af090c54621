"""GF relative: ||GF_t - GF*||_2 / ||GF*||_2, so the threshold does not depend on the loss scale."""

from __future__ import annotations

import numpy as np

from incop_core.consistency.distances.base import DISTANCES, GRADIENTS, Snapshot


@DISTANCES.register("gf-relative", (GRADIENTS,), "||GF_t - GF*||_2 / ||GF*||_2")
def gf_relative(current: Snapshot, reference: Snapshot) -> float:
    return float(np.linalg.norm(current.gradients - reference.gradients)
                 / max(np.linalg.norm(reference.gradients), 1e-12))
