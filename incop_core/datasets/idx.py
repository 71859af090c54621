"""IDX files (the MNIST family's format), plain or gzip-compressed, read with clear errors.

The format allows other element types, but the MNIST family stores unsigned-byte images (0..255) and integer labels:
images of another type (float, int16, int8) are refused rather than wrapped into bytes, and so are labels that are not
integers (float, NaN) or lie outside the classes the data set declares.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from incop_core.foundations.errors import DataError
from incop_core.foundations.pathkind import FILE, kind_of

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file; a truncated or corrupt file raises DataError naming the file."""
    path = Path(path)
    fix = (f"{path} is corrupt or truncated; reinstall the data (apt-get install --reinstall dataset-fashion-mnist) "
           "or point --data-root elsewhere")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(fix) from exc
    if not raw:
        raise DataError(fix.replace("is corrupt or truncated", "is empty (0 bytes)"))
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(fix)
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(fix)
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(fix)
    if not shape or shape[0] == 0:
        raise DataError(fix.replace("is corrupt or truncated", "holds no items"))
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx(root: Path, stem: str) -> Path:
    """The file `stem` or `stem`.gz in `root` or the folders torchvision downloads into."""
    candidates = [folder / name
                  for folder in (root, root / "FashionMNIST" / "raw", root / "MNIST" / "raw", root / "raw")
                  for name in (stem, stem + ".gz")]
    kinds = [kind_of(path) for path in candidates]
    if FILE in kinds:
        return candidates[kinds.index(FILE)]
    odd = next(((path, kind) for path, kind in zip(candidates, kinds) if kind is not None), None)
    if odd:
        raise DataError(f"{odd[0]} is {odd[1]}, not a file; replace it with the IDX file or point --data-root "
                        "elsewhere")
    raise DataError(f"{stem}[.gz] not found under {root}; install the data (apt-get install dataset-fashion-mnist) or "
                    "pass --data-root")


def read_pair(root: Path, stems: tuple[str, str], classes: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x H x W, uint8) and labels (N) of one split, checked to pair up and to be what `name` declares."""
    image_file, label_file = (find_idx(root, stem) for stem in stems)
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"IDX files under {root} do not pair up ({images.shape} images, {labels.shape} labels); check "
                        "--data-root")
    if images.dtype != np.uint8:
        raise DataError(f"{image_file} holds {images.dtype} pixels, but IDX images must be unsigned bytes (0..255); "
                        f"convert them to uint8 or point --data-root at the real {name} files")
    check_labels(labels, classes, label_file, name)
    return images, labels


def check_labels(labels: np.ndarray, classes: int, path: Path, name: str) -> None:
    """Refuse labels that are not integers in 0..classes-1: the data set declares `classes` classes, one stray label
    must not add more, and a float label (NaN, 2.5) names no class."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path} holds {labels.dtype} labels, but labels must be integers (class numbers "
                        f"0..{classes - 1}); fix the label file or point --data-root at the real {name} files")
    bad = labels[(labels < 0) | (labels >= classes)]
    if len(bad):
        raise DataError(f"{path} holds label {int(bad[0])} ({len(bad)} labels outside 0..{classes - 1}), but {name} "
                        f"has {classes} classes; fix the label file or point --data-root at the real {name} files")


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (gzip when the name ends in .gz); used to make test data."""
    array = np.ascontiguousarray(array)
    header = bytes([0, 0, _CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    Path(path).write_bytes(gzip.compress(data) if str(path).endswith(".gz") else data)
