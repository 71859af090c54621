"""A registry at any fsspec URL (a local directory by default): atomic writes, listings, the `latest` pointer.

Layout: URL/NAME/latest (the version as text) and URL/NAME/versions/VERSION/{manifest.json, model files}.
Writes go to a hidden temporary name and are moved into place, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Optional

from .registry_errors import NotFound, RegistryError
from .registry_manifest import LATEST, MANIFEST, VERSIONS, parse_manifest, version_dir


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
