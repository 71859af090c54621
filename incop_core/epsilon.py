"""Auto epsilon: how far the dense network's own flow still moved near its best epoch.

Rule (documented in README): with F_e the flow after fine-tuning epoch e and b the epoch of best
validation accuracy, epsilon = median of ||F_e - F_b||_2 over the K = 3 epochs before b (after b
when b is the first epoch). A pruned network whose flow is that close to F_b is as consistent
with the dense network as the dense network was with itself while converging.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .signals import flow_distance

WINDOW = 3


def auto_epsilon(flows: list[np.ndarray], best: int) -> Optional[float]:
    """`flows[e]` is the flow after epoch e+1; `best` the 1-based best epoch. None when undefined."""
    b = best - 1
    window = list(range(max(0, b - WINDOW), b)) or list(range(b + 1, min(len(flows), b + 1 + WINDOW)))
    distances = [flow_distance(flows[e], flows[b]) for e in window]
    distances = [d for d in distances if np.isfinite(d) and d > 0]
    return float(np.median(distances)) if distances else None


def auto_threshold(noise: Optional[float], fresh: float) -> float:
    """Epsilon for one iteration, between the dense network's noise n and the freshly pruned network's distance f:
    n when f <= n (already consistent: retrain 0 epochs), else min(2n, (n + f) / 2)."""
    if not np.isfinite(fresh):
        return noise if noise and noise > 0 else 0.0  # never consistent while the distance is undefined
    if noise is None or not np.isfinite(noise) or noise <= 0:
        return fresh / 2 if fresh > 0 else float("inf")
    return min(2 * noise, (noise + fresh) / 2) if fresh > noise else noise
