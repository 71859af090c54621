"""Moving stage outputs between machines through any fsspec URL (a shared directory, S3, ...)."""

from __future__ import annotations

from pathlib import Path

import fsspec

from .errors import DeployError


def _fs(uri: str):
    try:
        fs, root = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise DeployError(f"cannot open storage {uri!r} ({exc}); install its fsspec driver or fix the URL") from None
    return fs, root


def upload_tree(local: Path, uri: str) -> str:
    """Copy a local directory to `uri` (files first, then a `.complete` marker); returns the URI."""
    fs, root = _fs(uri)
    fs.makedirs(root, exist_ok=True)
    for path in sorted(p for p in Path(local).rglob("*") if p.is_file() and not p.name.startswith(".")):
        target = f"{root}/{path.relative_to(local).as_posix()}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(path), target)
    fs.pipe_file(f"{root}/.complete", b"ok\n")
    return uri


def download_tree(uri: str, local: Path) -> Path:
    """Copy a complete upload at `uri` into `local`; an unfinished upload is refused."""
    fs, root = _fs(uri)
    if not fs.exists(f"{root}/.complete"):
        raise DeployError(f"{uri} holds no complete upload; run the GPU stages first or check the storage URL")
    for remote in fs.find(root):
        relative = remote[len(root.rstrip("/")) + 1:]
        if relative == ".complete":
            continue
        target = Path(local) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(remote, str(target))
    return Path(local)
