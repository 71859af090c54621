"""Consistency signals (docs/algorithms.md §4.3): how far a network is from the dense one, measured on the probe set.

A distance is a plug-in: one file, one registration, one function `(current, reference) -> float`
over two `Snapshot`s of the same probe images. `needs` says what a snapshot must hold for it, so a
check makes only the passes its distance uses. NaN or inf means "not yet consistent".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from incop_core.foundations.plugins import Names

LOGITS, FEATURES, GRADIENTS = "logits", "features", "gradients"


@dataclass(frozen=True)
class Snapshot:
    """What one probe measurement saw: logits (n x K), per-layer channel means a_l (n x C_l), GF per layer."""

    logits: Optional[torch.Tensor] = None
    features: Optional[list[torch.Tensor]] = None
    gradients: Optional[np.ndarray] = None


DistanceFn = Callable[[Snapshot, Snapshot], float]


@dataclass(frozen=True)
class Distance:
    name: str
    needs: frozenset[str]
    fn: DistanceFn
    summary: str
    counted: bool = False  # the value is a share of probe images (binomial: its resolution and tests follow)

    def __call__(self, current: Snapshot, reference: Snapshot) -> float:
        if not _finite(current, self.needs):
            return float("inf")
        value = float(self.fn(current, reference))
        return value if np.isfinite(value) else float("inf")


def _finite(snapshot: Snapshot, needs: frozenset[str]) -> bool:
    """A network whose outputs, activations or gradients hold NaN or inf is never consistent."""
    tensors = {LOGITS: [snapshot.logits], FEATURES: snapshot.features or [],
               GRADIENTS: [torch.as_tensor(snapshot.gradients)] if snapshot.gradients is not None else []}
    return all(bool(torch.isfinite(t).all()) for need in needs for t in tensors[need] if t is not None)


class DistanceRegistry(Names[Distance]):
    """The distances by name, each with the snapshot parts it needs; listed for the config and the CLI."""

    def __init__(self) -> None:
        super().__init__("distance")

    def register(self, name: str, needs: tuple[str, ...], summary: str,
                 counted: bool = False) -> Callable[[DistanceFn], DistanceFn]:
        def add(fn: DistanceFn) -> DistanceFn:
            self.add(name, Distance(name, frozenset(needs), fn, summary, counted))
            return fn
        return add


DISTANCES = DistanceRegistry()
