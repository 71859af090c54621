"""The paper's IF summary: the mean of each connectivity matrix C_l, compared with ||IF_t - IF*||_2.

Kept for fidelity: it ranks checkpoints worse than output consistency, and under the paper's epsilon (0.11) a
random network counts as consistent."""

from __future__ import annotations

import numpy as np

from incop_core.consistency.distances.base import DISTANCES, FEATURES, Snapshot
from incop_core.consistency.distances.connectivity import information_flow_vector


@DISTANCES.register("if-paper", (FEATURES,), "||IF_t - IF*||_2 with IF_l the mean of C_l (the paper's summary)")
def if_paper(current: Snapshot, reference: Snapshot) -> float:
    return float(np.linalg.norm(information_flow_vector(current.features)
                                - information_flow_vector(reference.features)))
