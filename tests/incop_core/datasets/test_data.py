"""Data loading: IDX parsing, seeded splits, and the real FashionMNIST package."""

from pathlib import Path

import numpy as np
import pytest
import torch

from incop_core.imp.config import validate
from incop_core.datasets.config import DataConfig
from incop_core.datasets.data import load_dataset
from incop_core.datasets.sources import DEFAULT_FASHION_ROOT
from incop_core.foundations.errors import DataError
from incop_core.datasets.idx import read_idx, write_idx
from incop_core.imp.rundir import load_records
from incop_core.imp.runner import run_pruning


def make_idx_root(root: Path, n_train=60, n_test=20, gz=True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{split}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n, dtype=np.uint8))
    return root


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, array)
    np.testing.assert_array_equal(read_idx(path), array)


def test_truncated_and_corrupt_idx_files_raise_a_data_error(tmp_path):
    path = tmp_path / "a.idx"
    write_idx(path, np.zeros((4, 5), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(path)
    (tmp_path / "b.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(tmp_path / "b.gz")


def test_split_is_seeded_disjoint_and_keeps_test_apart(tmp_path):
    root = make_idx_root(tmp_path, gz=False)
    cfg = DataConfig(root=str(root), val_fraction=0.25)
    a, b, c = load_dataset(cfg, 1), load_dataset(cfg, 1), load_dataset(cfg, 2)
    assert torch.equal(a.val.images, b.val.images) and not torch.equal(a.val.images, c.val.images)
    assert len(a.train) == 45 and len(a.val) == 15 and len(a.test) == 20
    train_rows = {bytes(x.numpy()) for x in a.train.images}
    assert not any(bytes(x.numpy()) in train_rows for x in a.val.images)
    assert a.input_shape == (1, 28, 28) and a.num_classes == 10


def _rows(split) -> set[bytes]:
    return {bytes(x.numpy()) for x in split.images}


def test_val_size_takes_validation_from_outside_the_training_subset_when_there_are_enough(tmp_path):
    root = make_idx_root(tmp_path, gz=False)
    old = load_dataset(DataConfig(root=str(root), train_subset=30, test_subset=10), 3)
    cfg = DataConfig(root=str(root), train_subset=30, val_size=20, test_subset=10)
    a, b, c = load_dataset(cfg, 3), load_dataset(cfg, 3), load_dataset(cfg, 4)
    assert len(a.train) == 30 and len(a.val) == 20
    assert _rows(a.train) == _rows(old.train) | _rows(old.val), "the whole subset trains"
    assert not _rows(a.val) & _rows(a.train)
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.train.labels, b.train.labels)
    assert not torch.equal(a.val.images, c.val.images)
    assert torch.equal(a.test.images, old.test.images) and torch.equal(a.test.labels, old.test.labels)


def test_val_size_is_carved_out_of_the_subset_when_too_few_images_lie_outside(tmp_path):
    root = make_idx_root(tmp_path, gz=False)
    old = load_dataset(DataConfig(root=str(root), train_subset=50), 0)
    a = load_dataset(DataConfig(root=str(root), train_subset=50, val_size=20), 0)
    assert len(a.train) == 30 and len(a.val) == 20 and not _rows(a.val) & _rows(a.train)
    assert _rows(a.train) | _rows(a.val) == _rows(old.train) | _rows(old.val)
    whole = load_dataset(DataConfig(root=str(root), val_size=12), 0)
    assert len(whole.train) == 48 and len(whole.val) == 12
    with pytest.raises(DataError, match="val_size 50 leaves no training images"):
        load_dataset(DataConfig(root=str(root), train_subset=50, val_size=50), 0)


def test_torchvision_raw_layout_is_found(tmp_path):
    make_idx_root(tmp_path / "FashionMNIST" / "raw")
    assert len(load_dataset(DataConfig(root=str(tmp_path)), 0).test) == 20


@pytest.mark.slow
def test_real_fashion_mnist_finetune_reaches_80_percent_then_one_incop_iteration(tmp_path):
    assert Path(DEFAULT_FASHION_ROOT).is_dir(), "install the data: apt-get install dataset-fashion-mnist"
    cfg = validate({"data": {"train_subset": 6000, "test_subset": 2000}, "finetune_epochs": 3,
                    "prune": {"iterations": 1, "max_epochs": 3, "probe_size": 512}})
    records = load_records(run_pruning(cfg, tmp_path))
    assert records[0]["test_acc"] >= 0.80
    assert (records[1]["remaining_fraction"] < 1.0
            and records[1]["stop_reason"] in {"settled", "flow", "plateau", "accuracy", "max-epochs"})
    assert records[1]["distances"], "the IF distance curve is recorded"
