"""A data set in memory: uint8 image splits with their labels, the normalisation of the training images, and the
batches a training or evaluation loop reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch

from incop_core.platforms.distributed import shard


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> "Split":
        return Split(self.images[index], self.labels[index])

    def probe(self, seed: int, size: int) -> "Split":
        """A run's fixed probe subset of its training split: the first `size` of a permutation seeded `seed + 1`
        (the runner measures on it, export reopens it)."""
        gen = torch.Generator().manual_seed(seed + 1)
        index = torch.randperm(len(self), generator=gen)[:size]
        return self.subset(index.to(self.labels.device))


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])


def batch_starts(n: int, batch_size: int, training: bool) -> list[int]:
    """Where the batches over n images start; in `training`, a lone last image joins the batch before it."""
    starts = list(range(0, n, batch_size))
    if training and batch_size > 1 and len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()  # BatchNorm cannot train on a batch of one
    return starts


def batches(split: Split, batch_size: int, dataset: Dataset, device: torch.device,
            generator: Optional[torch.Generator] = None, sharded: bool = False,
            training: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised float batches on `device`; shuffled when a generator is given; this rank's shard when `sharded`.
    `training` never yields a batch of one image (BatchNorm cannot train on it): a lone last image joins the batch
    before it."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    if sharded:
        order = shard(order)
        n = len(order)
    mean = torch.tensor(dataset.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(dataset.std, device=device).view(1, -1, 1, 1)
    on_device = split.images.device == device
    starts = batch_starts(n, batch_size, training)
    for start, end in zip(starts, starts[1:] + [n]):
        index = order[start:end]
        if on_device:
            index = index.to(device)
        images = split.images[index].to(device, non_blocking=True)
        labels = split.labels[index].to(device, non_blocking=True)
        yield (images.float() / 255 - mean) / std, labels
