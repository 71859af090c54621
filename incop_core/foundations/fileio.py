"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Files and folders are created with the usual modes less the umask (0644 and 0755 under umask 022), so a run's
outputs are readable by the group like any other file; tempfile's mkstemp (0600) and mkdtemp (0700) would hide them.
Private keys are written elsewhere (deploy/edge/signing.py), 0600."""

from __future__ import annotations

import errno
import io
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from incop_core.foundations.errors import CorruptFile


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _new_temp(path, lambda name: os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:  # a full disk on write or fsync
            raise OSError(exc.errno, exc.strerror, str(path)) from exc  # names the file, for errors.explain's sentence
        raise


def _new_temp(path: Path, create: Callable[[str], Any]) -> tuple[Any, str]:
    """Create a hidden temporary sibling `.NAME.RANDOM.tmp` of `path` with `create` (exclusive, so the kernel
    applies the umask to the mode asked for); returns what `create` returned and the name."""
    for _ in range(100):
        name = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return create(name), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}; remove the .{path.name}.*.tmp files there")


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def save_torch_atomic(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def read_json(path: Path) -> Any:
    """Parse a JSON file; one that does not parse is a CorruptFile (a ValueError) naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFile(f"{path} is corrupt ({exc}); restore it, or delete it and re-run the command that wrote "
                          "it") from None


def copy_folder_atomic(source: Path, target: Path) -> None:
    """Copy a folder to `target` through a temporary sibling and one rename; an existing target is kept."""
    target = Path(target)
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(_new_temp(target, lambda name: os.mkdir(name, 0o777))[1])
    try:
        _copy_files(Path(source), tmp, target)
        os.replace(tmp, target)
    except OSError:
        if not target.exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_files(source: Path, folder: Path, shown: Path) -> None:
    """Copy the tree under `source` into `folder`; a full disk names the file as it would lie under `shown` (the
    final folder). shutil's copytree would fold the error into a shutil.Error without its errno, and copyfile's fast
    path names the source."""
    for item in sorted(source.rglob("*")):
        destination = folder / item.relative_to(source)
        try:
            destination.mkdir(exist_ok=True) if item.is_dir() else shutil.copyfile(item, destination)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise OSError(exc.errno, exc.strerror, str(shown / item.relative_to(source))) from exc
