"""Where a data set lives during training: on the GPU when it fits comfortably, else pinned for async copies."""

from __future__ import annotations

from dataclasses import replace

import torch

from incop_core.datasets.splits import Dataset, Split

GPU_DATA_SHARE = 0.25  # keep a data set on the GPU when it takes at most this share of free memory


def place_dataset(data: Dataset, device: torch.device) -> Dataset:
    """Move the uint8 splits to the GPU when they fit comfortably, else pin them for async copies."""
    if device.type != "cuda":
        return data
    size = sum(s.images.nbytes + s.labels.nbytes for s in (data.train, data.val, data.test))
    free, _ = torch.cuda.mem_get_info(device)
    if size <= GPU_DATA_SHARE * free:
        move = lambda s: Split(s.images.to(device), s.labels.to(device))  # noqa: E731
    else:
        move = lambda s: Split(s.images.pin_memory(), s.labels.pin_memory())  # noqa: E731
    return replace(data, train=move(data.train), val=move(data.val), test=move(data.test))
