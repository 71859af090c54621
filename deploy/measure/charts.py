"""PNG bar charts of the report: size (raw, gzip, zstd), p50 latency per profile, accuracy."""

from __future__ import annotations

import io
from pathlib import Path

from incop_core.foundations.fileio import write_bytes_atomic


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())
    return path


def _grouped(ax, names: list[str], series: dict[str, list[float]]) -> None:
    width = 0.8 / max(len(series), 1)
    for i, (label, values) in enumerate(series.items()):
        positions = [x + (i - (len(series) - 1) / 2) * width for x in range(len(names))]
        bars = ax.bar(positions, values, width, label=label)
        ax.bar_label(bars, fmt="%.3g", fontsize=7, rotation=90, padding=2)
    ax.set_xticks(range(len(names)), names)
    ax.legend(fontsize=8)


def write_charts(rows: dict[str, dict], out_dir: Path, stem: str) -> dict[str, Path]:
    """Write <stem>.size.png, <stem>.latency.png and, when accuracies are known, <stem>.accuracy.png."""
    plt = _figure()
    names, paths = list(rows), {}
    fig, ax = plt.subplots(figsize=(7, 4))
    _grouped(ax, names, {kind: [rows[n]["sizes"][kind] / 1e6 for n in names] for kind in ("raw", "gzip", "zstd")})
    ax.set_yscale("log")
    ax.set_ylabel("MB (log scale)")
    ax.set_title("Artifact size")
    paths["size_chart"] = _save(fig, Path(out_dir) / f"{stem}.size.png")
    plt.close(fig)

    profiles = list(next(iter(rows.values()))["latency"]) if rows else []
    fig, ax = plt.subplots(figsize=(7, 4))
    _grouped(ax, names, {p: [rows[n]["latency"][p]["p50_ms"] for n in names] for p in profiles})
    ax.set_yscale("log")
    ax.set_ylabel("p50 latency, ms per batch (log scale)")
    ax.set_title("Latency per profile")
    paths["latency_chart"] = _save(fig, Path(out_dir) / f"{stem}.latency.png")
    plt.close(fig)

    known = [n for n in names if rows[n]["accuracy"] is not None]
    if known:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        _grouped(ax, known, {"test accuracy %": [100 * rows[n]["accuracy"] for n in known]})
        low = min(100 * rows[n]["accuracy"] for n in known)
        ax.set_ylim(max(0.0, low - 5), 100)
        ax.set_title("Test accuracy through onnxruntime")
        paths["accuracy_chart"] = _save(fig, Path(out_dir) / f"{stem}.accuracy.png")
        plt.close(fig)
    return paths
