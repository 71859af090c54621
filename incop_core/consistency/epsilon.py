"""Thresholds derived from the run itself (docs/algorithms.md §4.3, §4.4).

The paper's auto epsilon: how far the dense network's own flow still moved near its best epoch.

Rule (documented in README): with F_e the flow after fine-tuning epoch e and b the epoch of best
validation accuracy, epsilon = median of ||F_e - F_b||_2 over the K = 3 epochs before b (after b
when b is the first epoch). A pruned network whose flow is that close to F_b is as consistent
with the dense network as the dense network was with itself while converging.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from incop_core.consistency.signals import flow_distance

WINDOW = 3


def auto_epsilon(flows: list[np.ndarray], best: int) -> Optional[float]:
    """`flows[e]` is the flow after epoch e+1; `best` the 1-based best epoch. None when undefined."""
    b = best - 1
    window = list(range(max(0, b - WINDOW), b)) or list(range(b + 1, min(len(flows), b + 1 + WINDOW)))
    distances = [flow_distance(flows[e], flows[b]) for e in window]
    distances = [d for d in distances if np.isfinite(d) and d > 0]
    return float(np.median(distances)) if distances else None


Z95 = 1.6449  # one-sided 95 % quantile of the standard normal: every test below is a one-sided 95 % test


def consistent_count(noise_count: float) -> float:
    """The largest disagreement count k (of the probe's images) not significantly above the dense network's own count
    k_n under one retraining epoch: k - k_n <= z sqrt(k + k_n), a one-sided test on two Poisson counts, solved for k:
    k = k_n + z^2/2 + z sqrt(2 k_n + z^2/4). With k_n = 0 it is z^2 = 2.7 images: the probe's resolution."""
    k = max(float(noise_count), 0.0)
    return k + Z95 ** 2 / 2 + Z95 * math.sqrt(2 * k + Z95 ** 2 / 4)


def resolution(probe_size: int) -> float:
    """The smallest share of probe images a disagreement can be told apart from 0 with: z^2 / N."""
    return consistent_count(0.0) / max(probe_size, 1)


def consistent_epsilon(counted: bool, noise: Optional[float], probe_size: int) -> float:
    """Intermediate iterations: a network no farther from the dense one than the dense network's own retraining takes it
    has nothing left to recover. For a share of probe images, the binomial test above; for other signals the dense
    network's noise itself (0 when unmeasured: never consistent by distance alone)."""
    noise = noise if noise is not None and math.isfinite(noise) and noise > 0 else 0.0
    if counted:
        return consistent_count(noise * probe_size) / max(probe_size, 1)
    return noise


def recovered_epsilon(counted: bool, tolerance_pp: float, noise: Optional[float], probe_size: int) -> float:
    """The final iteration: top-1 disagreement d bounds the change of probe accuracy, |acc_pruned - acc_dense| <= d, so
    d <= tolerance_pp / 100 ships a network within the run's accuracy budget on the probe; never below the probe's
    resolution, and never raised by the dense network's noise (an unconverged dense network would make it trivially
    large). Signals that bound no accuracy fall back to the dense noise."""
    if counted:
        return max(tolerance_pp / 100, resolution(probe_size))
    return consistent_epsilon(False, noise, probe_size)


def improved(fixed: int, broken: int) -> bool:
    """McNemar's test between two checks on the same probe images: `fixed` images came to agree with the dense network,
    `broken` ones stopped agreeing. Under "no improvement" both are equally likely, so the distance improved beyond its
    own churn only if fixed - broken > z sqrt(fixed + broken)."""
    return fixed - broken > Z95 * math.sqrt(fixed + broken)
