"""Tiny FashionMNIST-style IDX directories for the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from incop_core.datasets.idx import write_idx


def make_idx(root: Path, bad_label=None, n_train: int = 30, n_test: int = 10) -> Path:
    """Gzipped IDX train and t10k splits whose labels are 0..4 only; `bad_label` replaces one training label."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 5, n, dtype=np.uint8)  # only classes 0..4 occur
        if bad_label is not None and split == "train":
            labels[3] = bad_label
        write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root
