"""A device directory: verified versions, the `current` and `previous` links, partial downloads and a lock.

    DEST/versions/V/         one complete, verified version (model files + the manifest.json it was checked against)
    DEST/current  -> versions/V    the model to run; swapped with os.replace of a temporary symlink
    DEST/previous -> versions/U    what `incop rollback` restores
    DEST/.partial/V/         downloads in progress (kept across interruptions so they resume)
    DEST/.lock               held (flock) by the pull or rollback working on DEST
    DEST/trusted.pub         optional: when present every pull and rollback must verify against it

DEST may be a symbolic link; nothing the device code writes or deletes under it may be (nor may `current` or
`previous` point anywhere but versions/V): such a link is refused before anything changes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from .errors import DeviceError
from .manifest import MANIFEST, VERSION_RE, parse_manifest, sha256_file

CURRENT, PREVIOUS, VERSIONS, PARTIAL, LOCK, TRUSTED_KEY = "current", "previous", "versions", ".partial", ".lock", \
    "trusted.pub"


class Device:
    """The model directory on one device."""

    def __init__(self, dest: Path):
        self.dest = Path(dest)
        self.trusted_key = self.dest / TRUSTED_KEY

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold DEST/.lock; a second pull or rollback on the same DEST fails at once instead of colliding."""
        self.dest.mkdir(parents=True, exist_ok=True)
        fd = _open_no_follow(self.dest / LOCK, os.O_RDWR | os.O_CREAT)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DeviceError(f"another pull or rollback is working on {self.dest}; wait for it to finish "
                                  "and re-run") from None
            yield
        finally:
            os.close(fd)  # releases the lock

    def link(self, which: str) -> Optional[str]:
        """The version `current` or `previous` points to, or None; refuse anything but a link to versions/V."""
        path = self.dest / which
        try:
            target = os.readlink(path)
        except FileNotFoundError:
            return None
        except OSError:  # there, but not a symbolic link
            target = ""
        folder, _, version = target.partition("/")
        if folder != VERSIONS or not VERSION_RE.match(version):
            raise DeviceError(f"{path} is not a link to {VERSIONS}/<version>; remove it and re-run the pull")
        return version

    def version_path(self, version: str) -> Path:
        return self.dest / VERSIONS / version

    def partial_path(self, version: str) -> Path:
        return self.dest / PARTIAL / version

    def check_paths(self, version: str) -> None:
        """Refuse, before anything is written, when a path a pull of VERSION touches is a symbolic link."""
        for path in (self.dest / PARTIAL, self.partial_path(version), self.dest / VERSIONS,
                     self.version_path(version)):
            no_link(path)
        self.check_partial(version)
        for which in (CURRENT, PREVIOUS):
            self.link(which)  # refuses a link that points anywhere but versions/V

    def check_partial(self, version: str) -> None:
        """Refuse when .partial, .partial/V or anything in it is a symbolic link (the download follows none)."""
        partial = self.partial_path(version)
        inside = list(partial.iterdir()) if partial.is_dir() and not partial.is_symlink() else []
        for path in (partial.parent, partial, *inside):
            no_link(path)

    def stored_manifest(self, version: str) -> dict:
        data = (self.version_path(version) / MANIFEST).read_bytes()
        manifest = parse_manifest(data, _name_in(data), version)
        return manifest

    def is_complete(self, version: str, manifest: dict) -> bool:
        """Whether versions/V holds every file of `manifest` with the right size and sha256."""
        base = self.version_path(version)
        for file_name, info in manifest["files"].items():
            path = base / file_name
            if not _plain_file(path) or path.stat().st_size != info["size"] or sha256_file(path) != info["sha256"]:
                return False
        return _plain_file(base / MANIFEST)

    def install(self, version: str, manifest_bytes: bytes) -> None:
        """Move the verified .partial/V into versions/V with its manifest; a damaged old copy is replaced."""
        staged, target = self.partial_path(version), self.version_path(version)
        self.check_partial(version)
        for path in (target.parent, target):
            no_link(path)
        _write_synced(staged / MANIFEST, manifest_bytes)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staged, target)
        _fsync_dir(target.parent)

    def switch(self, version: str) -> Optional[str]:
        """Point `current` at V and `previous` at what was current; return the previous version."""
        old = self.link(CURRENT)
        if old is not None and old != version:
            _point(self.dest / PREVIOUS, old)
        _point(self.dest / CURRENT, version)
        return old if old != version else self.link(PREVIOUS)

    def swap(self) -> tuple[str, str]:
        """Exchange `current` and `previous` (rollback); return (now current, now previous)."""
        current, previous = self.link(CURRENT), self.link(PREVIOUS)
        if previous is None or current is None:
            raise DeviceError(f"{self.dest} has no previous version to roll back to; pull a version first")
        _point(self.dest / CURRENT, previous)
        _point(self.dest / PREVIOUS, current)
        return previous, current

    def prune(self) -> None:
        """Remove versions that are neither current nor previous, and finished partial downloads."""
        keep = {self.link(CURRENT), self.link(PREVIOUS)}
        for path in (self.dest / VERSIONS, self.dest / PARTIAL):
            no_link(path)
        for path in (self.dest / VERSIONS).iterdir():
            if stat.S_ISLNK(os.lstat(path).st_mode):
                path.unlink()  # never followed, whatever it points to
            elif path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)  # rmtree unlinks links inside; it does not follow them
        shutil.rmtree(self.dest / PARTIAL, ignore_errors=True)


def no_link(path: Path) -> None:
    """Refuse when `path` is a symbolic link (a missing path is fine)."""
    try:
        linked = stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return
    if linked:
        raise _planted(path)


def _planted(path: Path) -> DeviceError:
    return DeviceError(f"{path} is a symbolic link; remove it and re-run the pull")


def _plain_file(path: Path) -> bool:
    """A regular file, not a link to one."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _open_no_follow(path: Path, flags: int, mode: int = 0o644) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _planted(path) from None
        raise DeviceError(f"cannot open {path} ({exc.strerror}); check the permissions of the device directory "
                          "and re-run the pull") from None


def _name_in(data: bytes) -> str:
    import json

    try:
        return str(json.loads(data).get("name"))
    except (ValueError, AttributeError):
        return "?"


def _point(link: Path, version: str) -> None:
    """Atomically make `link` a relative symlink to versions/VERSION."""
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex}.tmp")
    os.symlink(f"{VERSIONS}/{version}", tmp)
    os.replace(tmp, link)
    _fsync_dir(link.parent)


def _write_synced(path: Path, data: bytes) -> None:
    with os.fdopen(_open_no_follow(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
