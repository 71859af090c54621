"""File operations relative to an open directory that never follow a symbolic link.

A device directory can be written by other local users. Checking for links first and then opening a path
leaves a window in which a link planted mid-download redirects the write outside DEST. Here every open,
rename and removal is relative to a directory descriptor opened with O_NOFOLLOW, so a link planted at any
moment makes the operation fail (ELOOP) instead of following it, and a directory swapped for a link after
it was opened is not written through: the descriptor still names the original directory.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import Optional

from .errors import DeviceError

NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def planted(path: Path) -> DeviceError:
    return DeviceError(f"{path} is a symbolic link; remove it and re-run the pull")


def _refused(exc: OSError, path: Path) -> DeviceError:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return planted(path) if exc.errno != errno.ENOTDIR else \
            DeviceError(f"{path} is not a directory; remove it and re-run the pull")
    return DeviceError(f"cannot open {path} ({exc.strerror}); check the permissions of the device directory and "
                       "re-run the pull")


def open_at(parent: int, name: str, flags: int, shown: Path, mode: int = 0o644) -> int:
    """os.open(name) inside `parent` without following a link at `name`."""
    try:
        return os.open(name, flags | NO_FOLLOW, mode, dir_fd=parent)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _refused(exc, shown) from None


def open_dir(parent: int, name: str, shown: Path, create: bool = False) -> int:
    """A descriptor of the directory `name` inside `parent` (made when `create`); a link there is refused."""
    if create:
        try:
            os.mkdir(name, 0o755, dir_fd=parent)
        except FileExistsError:
            pass
    return open_at(parent, name, os.O_RDONLY | os.O_DIRECTORY, shown)


def lstat_at(parent: int, name: str) -> Optional[os.stat_result]:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def is_link_at(parent: int, name: str) -> bool:
    info = lstat_at(parent, name)
    return info is not None and stat.S_ISLNK(info.st_mode)


def same(a: Optional[os.stat_result], b: os.stat_result) -> bool:
    return a is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def remove_at(parent: int, name: str) -> None:
    """Remove `name` inside `parent`: a link or file is unlinked (never followed), a directory removed whole."""
    info = lstat_at(parent, name)
    if info is None:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=parent, ignore_errors=True)  # fd-based: links inside are unlinked, not followed
    else:
        os.unlink(name, dir_fd=parent)


def read_at(parent: int, name: str, shown: Path, limit: int) -> bytes:
    """The bytes of the regular file `name` inside `parent` (at most `limit`; more is an error)."""
    fd = open_at(parent, name, os.O_RDONLY, shown)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise DeviceError(f"{shown} is larger than {limit} bytes; remove it and re-run the pull")
    return data


def sha256_at(parent: int, name: str, shown: Path) -> str:
    digest = hashlib.sha256()
    with os.fdopen(open_at(parent, name, os.O_RDONLY, shown), "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_at(parent: int, name: str, data: bytes, shown: Path) -> None:
    """Write `name` inside `parent` atomically: a synced temporary, renamed over it within the same directory."""
    tmp = f".{name}.{uuid.uuid4().hex}.tmp"
    fd = open_at(parent, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, shown)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        remove_at(parent, tmp)
        raise
    os.fsync(parent)


class StagedFile:
    """One file being downloaded into .partial/V, reached only through that directory's descriptor."""

    def __init__(self, parent: int, name: str, shown: Path):
        self.parent, self.name, self.shown = parent, name, shown

    def __str__(self) -> str:
        return str(self.shown)

    def size(self) -> Optional[int]:
        """Its length, or None when it does not exist yet; a link or anything but a regular file is refused."""
        info = lstat_at(self.parent, self.name)
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise planted(self.shown) if stat.S_ISLNK(info.st_mode) else \
                DeviceError(f"{self.shown} is not a regular file; remove it and re-run the pull")
        return None if info is None else info.st_size

    def unlink(self) -> None:
        if self.size() is not None:
            os.unlink(self.name, dir_fd=self.parent)

    def open_for_writing(self):
        """A binary file object positioned at 0, created if absent and never truncated here (the caller seeks)."""
        return os.fdopen(open_at(self.parent, self.name, os.O_WRONLY | os.O_CREAT, self.shown), "wb")

    def sha256(self) -> str:
        return sha256_at(self.parent, self.name, self.shown)


class Stage:
    """DEST/PARTIAL/V held open: files are created and measured only through its descriptor."""

    def __init__(self, dest_fd: int, dest: Path, partial: str, version: str):
        self.version, self.shown = version, dest / partial / version
        self.parent = open_dir(dest_fd, partial, dest / partial, create=True)
        try:
            self.fd = open_dir(self.parent, version, self.shown, create=True)
        except BaseException:
            os.close(self.parent)
            raise

    def file(self, name: str) -> StagedFile:
        return StagedFile(self.fd, name, self.shown / name)

    def entries(self) -> list[os.DirEntry]:
        with os.scandir(self.fd) as found:
            entries = list(found)
        for entry in entries:
            if entry.is_symlink():
                raise planted(self.shown / entry.name)
        return entries

    def size(self) -> int:
        return sum(e.stat(follow_symlinks=False).st_size for e in self.entries() if e.is_file(follow_symlinks=False))

    def free(self) -> int:
        info = os.fstatvfs(self.fd)
        return info.f_bavail * info.f_frsize

    def close(self) -> None:
        os.close(self.fd)
        os.close(self.parent)
