"""Data that cannot train: labels the data set does not declare, empty IDX files, broken ImageFolder trees; each is
one sentence naming the fix and exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import TINY, assert_user_error, invoke
from tests.support.data import make_idx


def test_declared_classes_not_the_largest_label(tmp_path):
    from incop_core.datasets.config import DataConfig
    from incop_core.datasets.data import load_dataset

    data = load_dataset(DataConfig(name="fashion-mnist", root=str(make_idx(tmp_path / "idx"))), 0)
    assert data.num_classes == 10


@pytest.mark.parametrize("content, words", [(b"", "is empty"), (bytes([0, 0, 8, 1, 0, 0, 0, 0]), "holds no items")],
                         ids=["zero-bytes", "zero-items"])
def test_an_empty_idx_file(tmp_path, content, words):
    root = make_idx(tmp_path / "idx")
    (root / "train-labels-idx1-ubyte.gz").unlink()
    (root / "train-labels-idx1-ubyte").write_bytes(content)
    outcome = invoke("prune", *TINY, "--dataset", "fashion-mnist", "--data-root", root, "--runs-dir", tmp_path / "r")
    assert_user_error(outcome, "train-labels-idx1-ubyte", words)


def image_tree(root: Path, classes=("cat", "dog"), test_classes=None) -> Path:
    from PIL import Image

    for split, names in (("train", classes), ("test", test_classes or classes)):
        for name in names:
            (root / split / name).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(root / split / name / f"{i}.png")
    return root


def _empty(root: Path) -> None:
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()


def _no_class_folders(root: Path) -> None:
    _empty(root)
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "train" / "loose.png")


@pytest.mark.parametrize("make, words", [
    (_empty, ["train", "one subfolder of images per class"]),
    (_no_class_folders, ["train", "one subfolder of images per class"]),
    (lambda root: (image_tree(root) / "train" / "cat" / "2.png").write_bytes(b"not a png"),
     ["cat/2.png", "not a readable image"]),
    (lambda root: image_tree(root, test_classes=("cat", "cow")), ["differ", "use the same class folders"]),
], ids=["empty", "no-class-folders", "unreadable-image", "different-classes"])
def test_imagefolder_errors(tmp_path, make, words):
    root = tmp_path / "images"
    make(root)
    outcome = invoke("prune", *TINY, "--dataset", "imagefolder", "--data-root", root, "--runs-dir", tmp_path / "r")
    assert_user_error(outcome, *words)
