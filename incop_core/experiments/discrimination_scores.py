"""Scores of the discrimination test (docs/algorithms.md §4.6): does a consistency signal carry information about
accuracy?

Pure numpy over a checkpoint ladder's rows. A checkpoint is unrecovered when its validation gap to
the dense reference is > 2 pp and recovered when it is <= 0.5 pp; a signal passes when its AUROC for
"unrecovered" is >= 0.9 and the random network and the 99 %-pruned one (before retraining) are both
farther than every recovered checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

UNRECOVERED_GAP, RECOVERED_GAP = 0.02, 0.005
MIN_AUROC = 0.9
K_FACTORS = (1.0, 1.5, 2.0, 3.0, 5.0)


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(a positive scores higher than a negative), ties counting half; NaN when either group is empty."""
    pos, neg = np.asarray(positives, float)[:, None], np.asarray(negatives, float)[None, :]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n; tied values share the mean of the ranks they span."""
    x = np.asarray(values, float)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    start = 0
    while start < len(x):
        stop = start + 1
        while stop < len(x) and x[order[stop]] == x[order[start]]:
            stop += 1
        ranks[order[start:stop]] = (start + stop + 1) / 2  # mean of ranks start+1 .. stop
        start = stop
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of the average ranks; NaN when either side is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt(np.sum(rx * rx) * np.sum(ry * ry))
    return float(np.sum(rx * ry) / denom) if denom > 0 else float("nan")


def k_table(recovered: np.ndarray, unrecovered: np.ndarray, noise: float) -> dict[str, dict[str, float]]:
    """For epsilon = k * noise: share of recovered checkpoints below it and of unrecovered ones at or above it."""
    table = {}
    for k in K_FACTORS:
        eps = k * noise
        table[f"{k:g}"] = {"recovered_below": _share(recovered < eps), "unrecovered_above": _share(unrecovered >= eps)}
    return table


def _share(flags: np.ndarray) -> float:
    return float(flags.mean()) if flags.size else float("nan")


@dataclass(frozen=True)
class SignalScore:
    auroc: float
    spearman: float
    extremes_farther: bool  # random and 99 %-pruned (0 retraining epochs) both beyond every recovered checkpoint
    passes: bool
    noise: float
    k_table: dict

    def as_dict(self) -> dict:
        return {"auroc": self.auroc, "spearman": self.spearman, "extremes_farther": self.extremes_farther,
                "passes": self.passes, "noise": self.noise, "k_table": self.k_table}


def score_signal(rows: Sequence[dict], name: str, noise: float, extremes: Sequence[str]) -> SignalScore:
    """Score one signal over ladder rows (each with 'name', 'gap' and 'distances'); `extremes` names the far
    checkpoints."""
    dist = np.array([r["distances"][name] for r in rows], float)
    gaps = np.array([r["gap"] for r in rows], float)
    recovered, unrecovered = dist[gaps <= RECOVERED_GAP], dist[gaps > UNRECOVERED_GAP]
    area = auroc(unrecovered, recovered)
    far = [d for r, d in zip(rows, dist) if r["name"] in extremes]
    farther = len(far) == len(extremes) and all(bool(np.all(d > recovered)) for d in far)
    return SignalScore(area, spearman(dist, gaps), farther, bool(area >= MIN_AUROC) and farther, noise,
                       k_table(recovered, unrecovered, noise))
