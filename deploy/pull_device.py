"""A device directory: verified versions, the `current` and `previous` links, partial downloads and a lock.

    DEST/versions/V/         one complete, verified version (model files + the manifest.json it was checked against)
    DEST/current  -> versions/V    the model to run; swapped with os.replace of a temporary symlink
    DEST/previous -> versions/U    what `incop rollback` restores
    DEST/.partial/V/         downloads in progress (kept across interruptions so they resume)
    DEST/.lock               held (flock) by the pull or rollback working on DEST
    DEST/trusted.pub         optional: when present every pull and rollback must verify against it
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from .registry_errors import DeviceError
from .registry_manifest import MANIFEST, parse_manifest, sha256_file

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
        with open(self.dest / LOCK, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DeviceError(f"another pull or rollback is working on {self.dest}; wait for it to finish "
                                  "and re-run") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def link(self, which: str) -> Optional[str]:
        """The version `current` or `previous` points to, or None."""
        try:
            target = os.readlink(self.dest / which)
        except OSError:
            return None
        return Path(target).name

    def version_path(self, version: str) -> Path:
        return self.dest / VERSIONS / version

    def partial_path(self, version: str) -> Path:
        return self.dest / PARTIAL / version

    def stored_manifest(self, version: str) -> dict:
        data = (self.version_path(version) / MANIFEST).read_bytes()
        manifest = parse_manifest(data, _name_in(data), version)
        return manifest

    def is_complete(self, version: str, manifest: dict) -> bool:
        """Whether versions/V holds every file of `manifest` with the right size and sha256."""
        base = self.version_path(version)
        for file_name, info in manifest["files"].items():
            path = base / file_name
            if not path.is_file() or path.stat().st_size != info["size"] or sha256_file(path) != info["sha256"]:
                return False
        return (base / MANIFEST).is_file()

    def install(self, version: str, manifest_bytes: bytes) -> None:
        """Move the verified .partial/V into versions/V with its manifest; a damaged old copy is replaced."""
        staged = self.partial_path(version)
        _write_synced(staged / MANIFEST, manifest_bytes)
        target = self.version_path(version)
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
        for path in (self.dest / VERSIONS).iterdir():
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(self.dest / PARTIAL, ignore_errors=True)


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
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
