"""A registry at any fsspec URL (a local directory by default): atomic writes, listings, the `latest` pointer.

Layout: URL/NAME/latest (the version as text) and URL/NAME/versions/VERSION/{manifest.json, model files}.
Writes go to a hidden temporary name and are moved into place, so a reader never sees half a file.
One publisher at a time holds URL/NAME/.publish.lock: flock on a local directory, elsewhere an object
created only if absent (taken over once older than LOCK_STALE seconds).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from .errors import NotFound, RegistryError
from .manifest import LATEST, MANIFEST, VERSIONS, parse_manifest, version_dir

PUBLISH_LOCK = ".publish.lock"
LOCK_WAIT, LOCK_STALE, LOCK_POLL = 60.0, 600.0, 0.05


class Store:
    """One registry, addressed by an fsspec URL or a local path."""

    def __init__(self, url: str):
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        try:
            self.fs, self.root = fsspec.core.url_to_fs(str(url))
        except (ImportError, ValueError) as exc:
            raise RegistryError(f"cannot open registry {url} ({exc}); check the URL and install its fsspec backend")
        self.url, self.local = str(url), isinstance(self.fs, LocalFileSystem)
        self.root = self.root.rstrip("/")

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.root else rel

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self.fs.cat_file(self.path(rel))
        except FileNotFoundError:
            raise NotFound(f"{rel} is not in registry {self.url}; check --registry and --name") from None

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write through a temporary sibling and move it into place."""
        final = self.path(rel)
        if self.local:
            return _local_copy(final, lambda out: out.write(data))
        tmp = self._tmp_name(final)
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, final)

    def put_file(self, local: Path, rel: str) -> None:
        final = self.path(rel)
        if self.local:
            with open(local, "rb") as src:
                return _local_copy(final, lambda out: shutil.copyfileobj(src, out, 1 << 20))
        tmp = self._tmp_name(final)
        self.fs.put_file(str(local), tmp)
        self.fs.mv(tmp, final)

    def create_bytes(self, rel: str, data: bytes) -> bool:
        """Write `rel` only if it does not exist yet; False when another writer was first."""
        final = self.path(rel)
        if self.local:  # a synced temporary, hard-linked into place: it either appears whole or not at all
            tmp = self._tmp_name(rel)
            self.write_bytes(tmp, data)
            try:
                os.link(self.path(tmp), final)
            except FileExistsError:
                return False
            finally:
                os.unlink(self.path(tmp))
            return True
        try:
            with self.fs.open(final, "xb") as out:
                out.write(data)
        except FileExistsError:
            return False
        except (ValueError, NotImplementedError, TypeError):  # no exclusive mode: check, write, read back
            if self.fs.exists(final):
                return False
            self.fs.pipe_file(final, data)
        return self.fs.cat_file(final) == data

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the publish lock of NAME, waiting up to LOCK_WAIT seconds for another publisher."""
        rel = f"{name}/{PUBLISH_LOCK}"
        release = self._flock(rel, name) if self.local else self._lock_object(rel, name)
        try:
            yield
        finally:
            release()

    def _busy(self, name: str) -> RegistryError:
        return RegistryError(f"another publish of {name} is holding the lock in registry {self.url} (waited "
                             f"{LOCK_WAIT:g} s); wait for it to finish and re-run")

    def _flock(self, rel: str, name: str) -> Callable[[], None]:
        path = Path(self.path(rel))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return lambda: os.close(fd)  # closing the descriptor releases the lock
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise self._busy(name) from None
                time.sleep(LOCK_POLL)

    def _lock_object(self, rel: str, name: str) -> Callable[[], None]:
        body = json.dumps({"token": uuid.uuid4().hex, "time": time.time()}).encode()
        deadline = time.monotonic() + LOCK_WAIT
        while not self.create_bytes(rel, body):
            if self._lock_age(rel) > LOCK_STALE:
                self.fs.rm_file(self.path(rel))  # a publisher that died holding it
                continue
            if time.monotonic() > deadline:
                raise self._busy(name)
            time.sleep(LOCK_POLL)
        return lambda: self._unlock_object(rel, body)

    def _lock_age(self, rel: str) -> float:
        try:
            return time.time() - float(json.loads(self.fs.cat_file(self.path(rel)))["time"])
        except FileNotFoundError:
            return 0.0
        except (ValueError, KeyError, TypeError):  # half written: judge by the object's own time
            try:
                return time.time() - self.fs.modified(self.path(rel)).timestamp()
            except Exception:  # a backend without modification times
                return 0.0

    def _unlock_object(self, rel: str, body: bytes) -> None:
        try:
            if self.fs.cat_file(self.path(rel)) == body:
                self.fs.rm_file(self.path(rel))
        except FileNotFoundError:
            pass

    @staticmethod
    def _tmp_name(final: str) -> str:
        parent, base = final.rsplit("/", 1) if "/" in final else ("", final)
        return f"{parent}/.tmp-{uuid.uuid4().hex}-{base}" if parent else f".tmp-{uuid.uuid4().hex}-{base}"

    def names(self) -> list[str]:
        """Model names that have at least one published version."""
        if not self.fs.isdir(self.root):
            return []
        entries = [e.rstrip("/").rsplit("/", 1)[-1] for e in self.fs.ls(self.root, detail=False)]
        return sorted(e for e in entries if not e.startswith(".") and self.versions(e))

    def versions(self, name: str) -> list[str]:
        """Published versions of `name` (those whose manifest is in place), oldest integer first."""
        base = self.path(f"{name}/{VERSIONS}")
        if not self.fs.isdir(base):
            return []
        found = [e.rstrip("/").rsplit("/", 1)[-1] for e in self.fs.ls(base, detail=False)]
        found = [v for v in found if not v.startswith(".") and self.exists(f"{version_dir(name, v)}/{MANIFEST}")]
        return sorted(found, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))

    def latest(self, name: str) -> Optional[str]:
        return self.read_bytes(f"{name}/{LATEST}").decode().strip() if self.exists(f"{name}/{LATEST}") else None

    def manifest(self, name: str, version: str) -> dict:
        return parse_manifest(self.read_bytes(f"{version_dir(name, version)}/{MANIFEST}"), name, version)


def _local_copy(final: str, write) -> None:
    """Write a local file through a temporary sibling, fsync it, and rename it over `final`."""
    path = Path(final)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        with open(tmp, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
