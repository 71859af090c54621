"""Bad input data and configs, second round (issue 20, findings 8 and 9): an empty training split, configs too deep
or not files, out-of-range seeds, booleans for numbers, odd IDX files, ImageFolder trees with loops, hidden folders
or bombs, downloads without a network, NaN weights. Each is one sentence and exit 2 through the installed command."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.bad_inputs import run_incop, expect_user_error
from incop_core.datasets.idx import write_idx
from tests.support.cli import TINY

FAST = ["--iterations", "1", "--max-epochs", "1", "--finetune-epochs", "1", "--set", "prune.probe_size=16",
        "--set", "model.width=8"]
NO_NETWORK = {key: "http://127.0.0.1:9" for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}


def prune(tmp_path, *args, timeout: float = 120):
    return run_incop("prune", *args, "--runs-dir", tmp_path / "runs", timeout=timeout)


@pytest.mark.timeout(90)
def test_an_empty_training_split_is_refused_instead_of_hanging(tmp_path):
    outcome = prune(tmp_path, *TINY, "--train-subset", "100", "--set", "data.val_fraction=0.999", timeout=60)
    expect_user_error(outcome, "data.val_fraction", "none to train on")


class _NeverStop:
    def check(self, epoch):
        from incop_core.criteria import Verdict

        return Verdict(False)


def _tiny_training():
    from incop_core.training.optim import OptimConfig
    from incop_core.datasets.config import DataConfig
    from incop_core.datasets.data import load_dataset
    from incop_core.pruning.masks import Mask
    from incop_core.models.zoo import SmallCNN

    data = load_dataset(DataConfig(name="synthetic", synthetic_size=20, image_size=8, num_classes=2), 0)
    model = SmallCNN(1, 8, 2, 4)
    return model, data, Mask.dense(model), OptimConfig(batch_size=8)


@pytest.mark.timeout(60)
def test_an_epoch_without_a_batch_raises_instead_of_looping(monkeypatch):
    from incop_core.training import train as train_module
    from incop_core.foundations.errors import DataError

    model, data, mask, optim = _tiny_training()
    monkeypatch.setattr(train_module, "batches", lambda *args, **kwargs: iter(()))
    with pytest.raises(DataError, match="trained on no batch"):
        train_module.train(model, data, mask, optim, _NeverStop(), 1, torch.device("cpu"), 0)


def test_training_refuses_an_empty_split_and_nan_weights():
    from dataclasses import replace

    from incop_core.foundations.errors import DataError, TrainingDiverged
    from incop_core.training.train import train

    model, data, mask, optim = _tiny_training()
    empty = replace(data, train=data.train.subset(torch.arange(0)))
    with pytest.raises(DataError, match="lower data.val_fraction"):
        train(model, empty, mask, optim, _NeverStop(), 1, torch.device("cpu"), 0)
    with torch.no_grad():
        model.features[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match="NaN or infinite values before training .features.0.weight") as caught:
        train(model, data, mask, optim, _NeverStop(), 1, torch.device("cpu"), 0)
    assert "lower the learning rate" not in str(caught.value)


def _nested(levels: int) -> str:
    return '{"prune": ' * levels + "{}" + "}" * levels


def _file(name: str, write):
    """A maker of the config file `name`: `write(path)` puts something there; returns the path."""
    def make(folder: Path) -> Path:
        write(folder / name)
        return folder / name
    return make


@pytest.mark.parametrize("make, mentions", [
    (_file("c.json", lambda p: p.write_text(_nested(4000))), ["nests too deeply", "fix the file"]),
    (_file("c.toml", lambda p: p.write_text("a = " + "[" * 4000 + "]" * 4000)), ["nests too deeply"]),
    (_file("c.json", lambda p: p.write_text(_nested(50))), ["more than 32 levels deep", "prune.prune.prune"]),
    (_file("c.json", lambda p: p.write_text(json.dumps({"prune": {"probe_batch": True}}))),
     ["prune.probe_batch", "a boolean"]),
    (_file("c.json", os.mkfifo), ["is a FIFO (named pipe), not a file"]),
    (_file("c.json", os.mkdir), ["is a directory, not a file"]),
], ids=["json-4000-deep", "toml-4000-deep", "50-deep", "probe-batch-true", "fifo", "directory"])
def test_config_files_that_cannot_be_settings(tmp_path, make, mentions):
    expect_user_error(prune(tmp_path, *TINY, "--config", make(tmp_path)), *mentions)


def test_a_config_file_too_large_to_be_one(tmp_path):
    from incop_core.foundations.rawconfig import read_config_file
    from incop_core.foundations.errors import ConfigError

    path = tmp_path / "big.json"
    with path.open("wb") as handle:
        handle.truncate(17 * 2**20)
    with pytest.raises(ConfigError, match="more than the 16 MiB"):
        read_config_file(path)


@pytest.mark.parametrize("args, mentions", [
    (["--set", "seed=1e23"], ["seed", "whole number from 0 to 4294967295"]),
    (["--seed", "99999999999999999999999"], ["seed", "less than or equal to 4294967295"]),
], ids=["seed-1e23", "seed-beyond-int64"])
def test_numbers_out_of_range_or_booleans(tmp_path, args, mentions):
    expect_user_error(prune(tmp_path, *TINY, *args), *mentions)


@pytest.mark.parametrize("raw, where", [
    ({"prune": {"iterations": True}}, "prune.iterations"), ({"optim": {"lr": True}}, "optim.lr"),
    ({"prune": {"criterion": {"kind": "incop", "epsilon": True}}}, "prune.criterion.epsilon"),
])
def test_booleans_are_not_numbers(raw, where):
    from incop_core.imp.config import validate
    from incop_core.foundations.errors import ConfigError

    with pytest.raises(ConfigError, match=f"at {where}: a boolean where a number belongs"):
        validate(raw)
    assert validate({"data": {"download": True}}).data.download is True


def test_a_float_seed_flag_is_a_usage_error(tmp_path):
    code, stdout, stderr = prune(tmp_path, *TINY, "--seed", "1e23")
    assert code == 2 and "Traceback" not in stdout + stderr and "--seed" in stderr


def _idx_file(path: Path, array: np.ndarray, code: int, dtype: str) -> None:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array).astype(dtype).tobytes())


def _replace(path: Path, make) -> None:
    path.unlink()
    make(path)


def _nan_labels(root: Path) -> None:
    labels = np.arange(40) % 10.0
    labels[3] = np.nan
    _idx_file(root / "train-labels-idx1-ubyte", labels, 0x0E, ">f8")


@pytest.mark.parametrize("damage, mentions", [
    (_nan_labels, ["train-labels-idx1-ubyte", "float64 labels", "must be integers"]),
    (lambda r: _idx_file(r / "train-images-idx3-ubyte", np.full((40, 28, 28), 900), 0x0B, ">i2"),
     ["train-images-idx3-ubyte", "int16 pixels", "unsigned bytes"]),
    (lambda r: write_idx(r / "t10k-images-idx3-ubyte", np.zeros((12, 32, 32), np.uint8)), ["1x32x32", "1x28x28"]),
    (lambda r: _replace(r / "train-images-idx3-ubyte", os.mkdir),
     ["train-images-idx3-ubyte is a directory, not a file"]),
    (lambda r: _replace(r / "train-labels-idx1-ubyte", os.mkfifo), ["train-labels-idx1-ubyte is a FIFO (named pipe)"]),
], ids=["nan-labels", "int16-images", "test-32-train-28", "directory-for-file",
                             "fifo-for-file"])
def test_idx_files_that_are_not_what_the_data_set_declares(tmp_path, damage, mentions):
    root = tmp_path / "idx"
    root.mkdir()
    for split, n in (("train", 40), ("t10k", 12)):
        write_idx(root / f"{split}-images-idx3-ubyte", np.zeros((n, 28, 28), np.uint8))
        write_idx(root / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    damage(root)
    expect_user_error(prune(tmp_path, *FAST, "--dataset", "fashion-mnist", "--data-root", root), *mentions)


def test_fractional_labels_and_in_range_integer_labels():
    from incop_core.foundations.errors import DataError
    from incop_core.datasets.idx import check_labels

    with pytest.raises(DataError, match="float32 labels, but labels must be integers"):
        check_labels(np.array([0.5, 1.0], np.float32), 10, Path("labels"), "mnist")
    check_labels(np.array([0, 9], np.int16), 10, Path("labels"), "mnist")  # any integer type in range is accepted


def image_tree(root: Path, per_class: int = 3) -> Path:
    from PIL import Image

    for split in ("train", "test"):
        for label, name in enumerate(("cat", "dog")):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(np.full((8, 8, 3), 100 * label + 30 * i, np.uint8)).save(
                    root / split / name / f"{i}.png")
    return root


def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG that claims width x height pixels: PIL refuses it on open, so nothing large is ever written."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("damage, mentions", [
    (lambda r: os.symlink("..", r / "train" / "cat" / "again"),
     ["train/cat/again", "symbolic link loop", "remove the link"]),
    (lambda r: os.symlink(r / "train" / "cat" / "0.png", r / "test" / "dog" / "9.png"),
     ["same image file", "remove one"]),
    (lambda r: _png_header(r / "train" / "cat" / "big.png", 20000, 20000), ["big.png", "too large to decode safely"]),
], ids=["symlink-loop", "train-image-linked-into-test", "decompression-bomb"])
def test_imagefolder_trees_that_would_mislead_training(tmp_path, damage, mentions):
    root = image_tree(tmp_path / "images")
    damage(root)
    outcome = prune(tmp_path, *FAST, "--set", "data.image_size=16", "--dataset", "imagefolder", "--data-root", root)
    expect_user_error(outcome, *mentions)


def test_hidden_folders_and_files_are_skipped(tmp_path):
    from PIL import Image

    from incop_core.datasets.config import DataConfig
    from incop_core.datasets.data import describe

    root = image_tree(tmp_path / "images")
    for split in ("train", "test"):
        (root / split / ".cache").mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / split / ".cache" / "x.png")
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / split / "cat" / ".hidden.png")
    summary = describe(DataConfig(name="imagefolder", root=str(root), image_size=8), 0)
    assert (summary["classes"], summary["train"] + summary["val"], summary["test"]) == (2, 6, 6)


def test_download_without_a_network(tmp_path):
    outcome = run_incop("prune", *FAST, "--dataset", "mnist", "--data-root", tmp_path / "data",
                        "--set", "data.download=true", "--runs-dir", tmp_path / "runs", env=NO_NETWORK)
    expect_user_error(outcome, "could not download", "check the network", "data.download=false")


def test_nan_weights_are_named_not_blamed_on_the_learning_rate(tmp_path):
    from incop_core.models.zoo import SmallCNN

    state = SmallCNN(1, 16, 4, 8).state_dict()
    state["features.0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    sentence = expect_user_error(prune(tmp_path, *TINY, "--set", f"model.weights={tmp_path / 'nan.pt'}"), "NaN")
    assert "learning rate" not in sentence
