"""Where images come from: IDX files (FashionMNIST, MNIST), torchvision's CIFAR-10, an ImageFolder tree or seeded
synthetic templates; each names its own fix when the files are missing or a download fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from incop_core.datasets.config import DataConfig
from incop_core.datasets.idx import read_pair
from incop_core.datasets.imagefolder import load_tree
from incop_core.datasets.splits import Split
from incop_core.foundations.errors import DataError
from incop_core.foundations.pathkind import FOLDER, not_a

DEFAULT_FASHION_ROOT = "/usr/share/datasets/fashion-mnist"
DECLARED_CLASSES = {"fashion-mnist": 10, "mnist": 10, "cifar10": 10}
IDX_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


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


def raw_splits(cfg: DataConfig, seed: int) -> tuple[Split, Split, int]:
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
