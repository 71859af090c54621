"""A device directory: verified versions, the `current` and `previous` links, partial downloads and a lock.

    DEST/versions/V/         one complete, verified version (model files + the manifest.json it was checked against)
    DEST/current  -> versions/V    the model to run; swapped with os.replace of a temporary symlink
    DEST/previous -> versions/U    what `incop rollback` restores
    DEST/.partial/V/         downloads in progress (kept across interruptions so they resume)
    DEST/.lock               held (flock) by the pull or rollback working on DEST
    DEST/.seen               the newest signed pointer accepted per model and channel (pull_pointer.py refuses
                             replays of older ones)
    DEST/trusted.pub         optional: when present every pull and rollback must verify against it

DEST may be a symbolic link; nothing the device code writes or deletes under it may be (nor may `current` or
`previous` point anywhere but versions/V). While DEST is locked, every write goes through descriptors opened
with O_NOFOLLOW (dirfd.py), so a link planted at any moment is refused rather than written through.
"""

from __future__ import annotations

import fcntl
import os
import stat
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from .dirfd import Stage, is_link_at, lstat_at, open_at, open_dir, planted, read_at, remove_at, same, \
    sha256_at, write_at
from .errors import DeviceError
from .manifest import MANIFEST, MAX_MANIFEST_BYTES, VERSION_RE, check_manifest, read_manifest

CURRENT, PREVIOUS, VERSIONS, PARTIAL, LOCK, TRUSTED_KEY = "current", "previous", "versions", ".partial", ".lock", \
    "trusted.pub"
SEEN, MAX_SEEN_BYTES = ".seen", 1 << 16


class Device:
    """The model directory on one device."""

    def __init__(self, dest: Path):
        self.dest = Path(dest)
        self.trusted_key = self.dest / TRUSTED_KEY
        self.fd: Optional[int] = None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold DEST/.lock; a second pull or rollback on the same DEST fails at once instead of colliding."""
        self.dest.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # DEST itself may be a link
        try:
            lock = open_at(self.fd, LOCK, os.O_RDWR | os.O_CREAT, self.dest / LOCK)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                raise DeviceError(f"another pull or rollback is working on {self.dest}; wait for it to finish "
                                  "and re-run") from None
            try:
                yield
            finally:
                os.close(lock)  # releases the lock
        finally:
            os.close(self.fd)
            self.fd = None

    def link(self, which: str) -> Optional[str]:
        """The version `current` or `previous` points to, or None; refuse anything but a link to versions/V."""
        path = self.dest / which
        try:
            target = os.readlink(which, dir_fd=self.fd) if self.fd is not None else os.readlink(path)
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

    def check_paths(self, version: str) -> None:
        """Refuse, before anything is written, when a path a pull of VERSION touches is a symbolic link (the
        writes themselves refuse links too, so one planted later fails the pull instead of being followed)."""
        for rel in (PARTIAL, f"{PARTIAL}/{version}", VERSIONS, f"{VERSIONS}/{version}"):
            if is_link_at(self.fd, rel):
                raise planted(self.dest / rel)
        for which in (CURRENT, PREVIOUS):
            self.link(which)  # refuses a link that points anywhere but versions/V

    @contextmanager
    def staging(self, version: str) -> Iterator[Stage]:
        stage = Stage(self.fd, self.dest, PARTIAL, version)
        try:
            yield stage
        finally:
            stage.close()

    def _version_fd(self, version: str) -> Optional[int]:
        """A descriptor of versions/V, or None when there is none."""
        try:
            versions = open_dir(self.fd, VERSIONS, self.dest / VERSIONS)
        except FileNotFoundError:
            return None
        try:
            return open_dir(versions, version, self.version_path(version))
        except FileNotFoundError:
            return None
        finally:
            os.close(versions)

    def stored_manifest(self, version: str) -> dict:
        fd = self._version_fd(version)
        if fd is None:
            raise FileNotFoundError(self.version_path(version))
        try:
            data = read_at(fd, MANIFEST, self.version_path(version) / MANIFEST, MAX_MANIFEST_BYTES)
        finally:
            os.close(fd)
        head = read_manifest(data, "?", version)
        return check_manifest(head, str(head.get("name")) if isinstance(head, dict) else "?", version)

    def is_complete(self, version: str, manifest: dict) -> bool:
        """Whether versions/V holds every file of `manifest` (regular files) with the right size and sha256."""
        fd = self._version_fd(version)
        if fd is None:
            return False
        try:
            for name, info in [*manifest["files"].items(), (MANIFEST, None)]:
                found = lstat_at(fd, name)
                if found is None or not stat.S_ISREG(found.st_mode):
                    return False
                if info is not None and (found.st_size != info["size"] or
                                         sha256_at(fd, name, self.version_path(version) / name) != info["sha256"]):
                    return False
            return True
        finally:
            os.close(fd)

    def install(self, stage: Stage, manifest_bytes: bytes) -> None:
        """Move the verified .partial/V into versions/V with its manifest; a damaged old copy is replaced.

        The rename is by name, so the staged directory is checked to be the one held open on both sides of it:
        a directory swapped for a link mid-pull is refused, never installed."""
        version, held = stage.version, os.fstat(stage.fd)
        stage.entries()  # refuses links planted among the files
        write_at(stage.fd, MANIFEST, manifest_bytes, stage.shown / MANIFEST)
        versions = open_dir(self.fd, VERSIONS, self.dest / VERSIONS, create=True)
        try:
            remove_at(versions, version)
            if not same(lstat_at(stage.parent, version), held):
                raise planted(stage.shown)
            os.replace(version, version, src_dir_fd=stage.parent, dst_dir_fd=versions)
            if not same(lstat_at(versions, version), held):
                remove_at(versions, version)
                raise planted(stage.shown)
            os.fsync(versions)
        finally:
            os.close(versions)

    def switch(self, version: str) -> Optional[str]:
        """Point `current` at V and `previous` at what was current; return the previous version."""
        old = self.link(CURRENT)
        if old is not None and old != version:
            self._point(PREVIOUS, old)
        self._point(CURRENT, version)
        return old if old != version else self.link(PREVIOUS)

    def swap(self) -> tuple[str, str]:
        """Exchange `current` and `previous` (rollback); return (now current, now previous)."""
        current, previous = self.link(CURRENT), self.link(PREVIOUS)
        if previous is None or current is None:
            raise DeviceError(f"{self.dest} has no previous version to roll back to; pull a version first")
        self._point(CURRENT, previous)
        self._point(PREVIOUS, current)
        return previous, current

    def prune(self) -> None:
        """Remove versions that are neither current nor previous, and finished partial downloads."""
        keep = {self.link(CURRENT), self.link(PREVIOUS)}
        versions = open_dir(self.fd, VERSIONS, self.dest / VERSIONS, create=True)
        try:
            for name in os.listdir(versions):
                if name not in keep or is_link_at(versions, name):
                    remove_at(versions, name)  # a link is unlinked, never followed
        finally:
            os.close(versions)
        remove_at(self.fd, PARTIAL)

    def _point(self, which: str, version: str) -> None:
        """Atomically make DEST/`which` a relative symlink to versions/VERSION."""
        tmp = f".{which}.{uuid.uuid4().hex}.tmp"
        os.symlink(f"{VERSIONS}/{version}", tmp, dir_fd=self.fd)
        os.replace(tmp, which, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        os.fsync(self.fd)

