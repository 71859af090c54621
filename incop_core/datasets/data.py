"""Data sets as in-memory uint8 tensors with a seeded train/validation split (stage 1; docs/algorithms.md §1).

The test split is only ever used for reported figures; stopping decisions use validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Optional

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from incop_core.platforms.distributed import shard
from incop_core.foundations.errors import DataError
from incop_core.datasets.idx import read_pair
from incop_core.datasets.imagefolder import load_tree
from incop_core.foundations.pathkind import FOLDER, not_a

DEFAULT_FASHION_ROOT = "/usr/share/datasets/fashion-mnist"
DECLARED_CLASSES = {"fashion-mnist": 10, "mnist": 10, "cifar10": 10}
IDX_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Data")
    name: Literal["fashion-mnist", "mnist", "cifar10", "imagefolder", "synthetic"] = Field(
        "fashion-mnist", description="Data set: IDX files, a torchvision root, an ImageFolder tree, or synthetic test "
                                     "data.")
    root: Optional[str] = Field(None, description=(
        "Where the data lives; fashion-mnist defaults to the Debian package's directory. IDX images must be uint8 and "
        "labels integers; in an ImageFolder tree hidden folders and files are skipped and each image is read once."))
    val_fraction: float = Field(0.1, gt=0, lt=1, description="Share of the training split held out for validation "
                                                             "(unless val_size is set).")
    val_size: Optional[int] = Field(None, ge=1, description=(
        "Validation images, taken from training-split images outside train_subset when there are enough "
        "(the training set is then the whole subset), else carved out of it; overrides val_fraction."))
    train_subset: Optional[int] = Field(None, ge=10, description="Use only this many training images (seeded choice).")
    test_subset: Optional[int] = Field(None, ge=10, description="Use only this many test images (seeded choice).")
    download: bool = Field(False, description="Let torchvision download MNIST/CIFAR-10 when missing (needs a network).")
    image_size: int = Field(32, ge=8, le=512, description="Side length for imagefolder and synthetic images.")
    channels: int = Field(1, ge=1, le=3, title="Synthetic only: channels", description="Channels of synthetic images.")
    num_classes: int = Field(4, ge=2, le=100, title="Synthetic only: classes", description="Classes of synthetic data.")
    synthetic_size: int = Field(512, ge=20, title="Synthetic only: training images",
                                description="Training images of synthetic data (test gets a quarter).")


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


def _load_idx_pair(root: Path, split: str, name: str) -> Split:
    images, labels = read_pair(root, IDX_STEMS[split], DECLARED_CLASSES[name], name)
    return Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


def _load_cifar10(root: Path, download: bool) -> tuple[Split, Split]:
    from torchvision.datasets import CIFAR10

    def split(train: bool) -> Split:
        data = CIFAR10(str(root), train=train, download=download)
        return Split(torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(data.targets))

    try:
        return split(True), split(False)
    except RuntimeError as exc:
        raise DataError(f"CIFAR-10 not found under {root}; place cifar-10-batches-py there or pass --set "
                        "data.download=true") from exc
    except OSError as exc:
        raise DataError(_no_download("CIFAR-10", root, exc)) from None


def _load_imagefolder(root: Path, size: int) -> tuple[Split, Split, int]:
    train, test, classes = load_tree(root, size)
    return Split(*train), Split(*test), classes


def _synthetic(cfg: DataConfig, seed: int) -> tuple[Split, Split]:
    """Learnable synthetic images: a fixed random template per class plus noise."""
    gen = torch.Generator().manual_seed(seed + 7919)
    shape = (cfg.channels, cfg.image_size, cfg.image_size)
    templates = torch.rand((cfg.num_classes, *shape), generator=gen) * 255

    def split(n: int) -> Split:
        labels = torch.randint(0, cfg.num_classes, (n,), generator=gen)
        noise = torch.randn((n, *shape), generator=gen) * 60
        return Split((templates[labels] + noise).clamp(0, 255).to(torch.uint8), labels)

    return split(cfg.synthetic_size), split(max(cfg.synthetic_size // 4, 10))


def _no_download(name: str, root: Path, exc: BaseException) -> str:
    """The sentence for a download that failed (no network, say): the last line of torchvision's report is the cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return (f"could not download {name} to {root} ({lines[-1][:160]}); check the network, or copy the files there "
            "and set data.download=false")


def _raw_splits(cfg: DataConfig, seed: int) -> tuple[Split, Split, int]:
    """Training and test splits and the number of classes the data set declares."""
    if cfg.name == "synthetic":
        return (*_synthetic(cfg, seed), cfg.num_classes)
    root = Path(cfg.root or (DEFAULT_FASHION_ROOT if cfg.name == "fashion-mnist" else ""))
    if not cfg.root and cfg.name != "fashion-mnist":
        raise DataError(f"data set {cfg.name} needs a root directory; pass --data-root")
    problem = not_a(root, FOLDER)
    if problem and not (cfg.download and problem == "does not exist" and cfg.name in ("mnist", "cifar10")):
        raise DataError(f"data directory {root} {problem}; install the data (apt-get install dataset-fashion-mnist) or "
                        "pass --data-root")
    if cfg.name == "cifar10":
        return (*_load_cifar10(root, cfg.download), DECLARED_CLASSES["cifar10"])
    if cfg.name == "imagefolder":
        return _load_imagefolder(root, cfg.image_size)
    if cfg.name == "mnist" and cfg.download:
        from torchvision.datasets import MNIST

        try:
            MNIST(str(root), download=True)
        except (OSError, RuntimeError) as exc:  # torchvision's MNIST raises RuntimeError after trying every mirror
            raise DataError(_no_download("MNIST", root, exc)) from None
    return _load_idx_pair(root, "train", cfg.name), _load_idx_pair(root, "test", cfg.name), DECLARED_CLASSES[cfg.name]


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
    full_train, test, num_classes = _raw_splits(cfg, seed)
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


def batches(split: Split, batch_size: int, dataset: Dataset, device: torch.device,
            generator: Optional[torch.Generator] = None,
            sharded: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised float batches on `device`; shuffled when a generator is given; this rank's shard when `sharded`."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    if sharded:
        order = shard(order)
        n = len(order)
    mean = torch.tensor(dataset.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(dataset.std, device=device).view(1, -1, 1, 1)
    on_device = split.images.device == device
    for start in range(0, n, batch_size):
        index = order[start:start + batch_size]
        if on_device:
            index = index.to(device)
        images = split.images[index].to(device, non_blocking=True)
        labels = split.labels[index].to(device, non_blocking=True)
        yield (images.float() / 255 - mean) / std, labels


def describe(cfg: DataConfig, seed: int) -> dict:
    """Load the data (so a missing or corrupt set fails here) and summarise its splits."""
    data = load_dataset(cfg, seed)
    return {"name": data.name, "train": len(data.train), "val": len(data.val), "test": len(data.test),
            "classes": data.num_classes, "input_shape": list(data.input_shape), "mean": list(data.mean),
            "std": list(data.std)}
