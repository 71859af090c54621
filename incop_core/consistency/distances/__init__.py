"""Consistency signals (docs/algorithms.md §4.3): how far a network is from the dense one, measured on the probe set.

The shared types and the registry live in `base`; importing the package registers the built-in plug-ins."""

from incop_core.consistency.distances.base import (  # noqa: F401 (the package's interface)
    DISTANCES, Distance, DistanceFn, DistanceRegistry, FEATURES, GRADIENTS, LOGITS, Snapshot)
from incop_core.consistency.distances import cka, disagreement, gf_paper, gf_relative, if_matrix, if_paper, kl  # noqa: F401 (registers the built-ins)
