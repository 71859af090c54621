"""ImageFolder trees (root/train/CLASS/*.png, root/test/CLASS/*.png) read into uint8 tensors, with clear errors.

Unlike torchvision's ImageFolder, which this replaces for reading, hidden folders and files (a name starting with
a dot: .cache, .ipynb_checkpoints, .DS_Store) are skipped and never become a class or an image, and every image is
read once: a symbolic link back to a folder already read (a loop, which torchvision follows until the path is too
long, multiplying the images) or a second path to the same file (a training image linked into test/ or into another
class) is refused, since it would put one image on both sides of the train/validation/test split. An image larger
than PIL's decompression-bomb limit is refused rather than decoded.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from incop_core.foundations.errors import DataError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _first(seen: dict[str, str], path: str, sentence: str) -> None:
    """Record `path` by its real path in `seen`; a second path to the same place is `sentence` (a DataError)."""
    real = os.path.realpath(path)
    if real in seen:
        raise DataError(sentence.format(path=path, real=real, seen=seen[real]))
    seen[real] = path


class _Walk:
    """The real paths read so far, shared by train/ and test/, so nothing is read twice."""

    def __init__(self) -> None:
        self.folders: dict[str, str] = {}
        self.files: dict[str, str] = {}

    def enter(self, folder: str) -> None:
        _first(self.folders, folder, "{path} leads to {real}, a folder already read as {seen} (a symbolic link loop "
               "or a second link to one folder); remove the link so each image is read once")

    def add(self, path: str) -> str:
        _first(self.files, path, "{path} and {seen} are the same image file (through a symbolic link); remove one, "
               "so no image is both trained on and validated or tested")
        return path

    def images(self, class_dir: str) -> list[str]:
        """The images under one class folder, in torchvision's order (folders sorted, then names)."""
        self.enter(class_dir)
        found = []
        for root, folders, names in os.walk(class_dir, followlinks=True):
            folders[:] = [f for f in sorted(folders) if _visible(f)]
            for folder in folders:
                self.enter(os.path.join(root, folder))
            found.append((root, sorted(n for n in names if _visible(n) and n.lower().endswith(IMG_EXTENSIONS))))
        return [self.add(os.path.join(root, name)) for root, names in sorted(found) for name in names]


def read_image(path: str, size: int) -> torch.Tensor:
    """One image as a 3 x size x size uint8 tensor."""
    from PIL import Image
    from torchvision.transforms import functional as F

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return F.pil_to_tensor(F.resize(img.convert("RGB"), [size, size]))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{path} is too large to decode safely ({str(exc).split(',')[0]}); resize it below "
                        f"{Image.MAX_IMAGE_PIXELS} pixels or remove it") from None
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's errors for unreadable or truncated files
        raise DataError(f"{path} is not a readable image ({type(exc).__name__}); remove or replace it") from None


def _classes(folder: Path) -> list[str]:
    fix = f"put each class's images in their own subfolder, e.g. {folder}/cat/1.png"
    try:
        classes = sorted(e.name for e in os.scandir(folder) if e.is_dir() and _visible(e.name))
    except FileNotFoundError:
        classes = []
    if not classes:
        raise DataError(f"{folder} needs one subfolder of images per class (found none); {fix}")
    return classes


def read_split(folder: Path, size: int, walk: _Walk) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images (N x 3 x size x size, uint8), labels and class names of one split folder."""
    classes, images, labels = _classes(folder), [], []
    walk.enter(str(folder))
    for label, name in enumerate(classes):
        paths = walk.images(str(folder / name))
        if not paths:
            raise DataError(f"{folder} needs one subfolder of images per class, but {folder / name} holds no image "
                            f"({', '.join(IMG_EXTENSIONS)}); put images in it or remove it")
        images += [read_image(p, size) for p in paths]
        labels += [label] * len(paths)
    return torch.stack(images), torch.tensor(labels), classes


def load_tree(root: Path,
              size: int) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor], int]:
    """(train images, labels), (test images, labels) and the number of classes of an ImageFolder root."""
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise DataError(f"ImageFolder root {root} needs train/ and test/ subdirectories with one folder per class")
    walk = _Walk()
    *train, classes = read_split(root / "train", size, walk)
    *test, test_classes = read_split(root / "test", size, walk)
    if test_classes != classes:
        raise DataError(f"the class folders of {root / 'test'} ({', '.join(test_classes)}) differ from those of "
                        f"{root / 'train'} ({', '.join(classes)}); use the same class folders in train/ and test/")
    return tuple(train), tuple(test), len(classes)
