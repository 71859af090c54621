"""Data sets as in-memory uint8 tensors with a seeded train/validation split (stage 1; docs/algorithms.md §1).

The test split is only ever used for reported figures; stopping decisions use validation.
"""

from __future__ import annotations

import torch

from incop_core.datasets.config import DataConfig
from incop_core.datasets.sources import raw_splits
from incop_core.datasets.splits import Dataset, Split
from incop_core.foundations.errors import DataError


def split_indices(cfg: DataConfig, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and validation indices from a seeded permutation of the training split.

    With `val_size`, validation comes from images outside the training subset when there are
    enough, so the whole subset trains; otherwise (and always without it) it is carved out of the subset."""
    subset = order[: cfg.train_subset] if cfg.train_subset else order
    if cfg.val_size is None:
        n_val = max(1, int(round(len(subset) * cfg.val_fraction)))
        if n_val >= len(subset):
            raise DataError(f"data.val_fraction {cfg.val_fraction} puts all {len(subset)} training images into "
                            "validation, leaving none to train on; lower data.val_fraction or raise --train-subset")
        return subset[n_val:], subset[:n_val]
    outside = order[len(subset):]
    if len(outside) >= cfg.val_size:
        return subset, outside[: cfg.val_size]
    if cfg.val_size >= len(subset):
        raise DataError(f"data.val_size {cfg.val_size} leaves no training images of the {len(subset)} available; "
                        "lower data.val_size or raise data.train_subset")
    return subset[cfg.val_size:], subset[: cfg.val_size]


def _same_shape(train: Split, test: Split, cfg: DataConfig) -> None:
    """The network is sized to the training images, so test images of another size cannot be evaluated."""
    shape = lambda split: "x".join(str(d) for d in split.images.shape[1:])  # noqa: E731
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(f"the test images of {cfg.root or cfg.name} are {shape(test)} (channels x height x width) but "
                        f"the training images {shape(train)}; use test files of the same image size as the training "
                        "files")


def load_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """Load, subset and split the data; the same config and seed always give the same splits."""
    full_train, test, num_classes = raw_splits(cfg, seed)
    _same_shape(full_train, test, cfg)
    gen = torch.Generator().manual_seed(seed)
    train_index, val_index = split_indices(cfg, torch.randperm(len(full_train), generator=gen))
    if cfg.test_subset and cfg.test_subset < len(test):
        test = test.subset(torch.randperm(len(test), generator=gen)[: cfg.test_subset])
    train, val = full_train.subset(train_index), full_train.subset(val_index)
    pixels = train.images.double() / 255
    mean = tuple(pixels.mean(dim=(0, 2, 3)).tolist())
    std = tuple(pixels.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    return Dataset(cfg.name, train, val, test, num_classes, mean, std)


def describe(cfg: DataConfig, seed: int) -> dict:
    """Load the data (so a missing or corrupt set fails here) and summarise its splits."""
    data = load_dataset(cfg, seed)
    return {"name": data.name, "train": len(data.train), "val": len(data.val), "test": len(data.test),
            "classes": data.num_classes, "input_shape": list(data.input_shape), "mean": list(data.mean),
            "std": list(data.std)}
