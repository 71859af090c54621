"""PNG plots like the paper's Figures 3-5 (mean ± std over seeds), written with matplotlib's Agg backend."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from incop_core.foundations.fileio import write_bytes_atomic

PANELS = {
    "test_accuracy": ("test accuracy %", lambda rs: [100 * r["test_acc"] for r in rs]),
    "epochs_per_iteration": ("retraining epochs", lambda rs: [r["epochs"] for r in rs]),
    "remaining_weights": ("remaining weights %", lambda rs: [100 * r["remaining_fraction"] for r in rs]),
    "cumulative_wall_time": ("cumulative wall time s", lambda rs: list(np.cumsum([r["wall_seconds"] for r in rs]))),
}


def _band(by_seed: dict, pick) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    series = [pick(records) for records in by_seed.values()]
    length = min(len(s) for s in series)
    values = np.array([s[:length] for s in series], dtype=float)
    return np.arange(length), values.mean(axis=0), values.std(axis=0)


def comparison_plots(records: dict[str, dict[int, list[dict]]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    written = []
    for name, (label, pick) in PANELS.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        for method, by_seed in records.items():
            x, mean, std = _band(by_seed, pick)
            ax.plot(x, mean, marker="o", label=method)
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        ax.set_xlabel("iteration (0 = dense fine-tune)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        write_bytes_atomic(out / f"{name}.png", buffer.getvalue())
        written.append(out / f"{name}.png")
    return written
