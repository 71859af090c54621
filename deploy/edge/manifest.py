"""The manifest of a registry entry: its schema, canonical bytes, checks, and the file names it may use.

Shared by publisher and device, so it imports only the standard library.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .bounded_json import load_json
from .errors import RegistryError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
LATEST = "latest"
SIGNED_LATEST = "latest.json"  # {name, version, created, manifest_sha256, issued, expires} + signature
MAX_POINTER_BYTES = 4096
DEFAULT_EXPIRES = 7 * 86400.0  # seconds a signed pointer stays valid; each publish, promote or refresh re-signs it
CHANNELS = "channels"  # NAME/channels/CHANNEL.json: the pointer a device following CHANNEL pulls
DEFAULT_CHANNEL = "stable"
VERSIONS = "versions"
MAX_MANIFEST_BYTES = 1 << 20
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
REQUIRED = ("schema_version", "name", "version", "created", "files", "model_file", "input_spec")
# Fields that make two entries "the same content" (publishing them twice is a no-op).
CONTENT_FIELDS = ("name", "files", "model_file", "metrics", "input_spec", "opset", "min_onnxruntime", "source")


def canonical_bytes(obj: Any) -> bytes:
    """The one byte string that is hashed and signed: sorted keys, no spaces, ASCII, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def signed_payload(manifest: dict) -> bytes:
    return canonical_bytes({k: v for k, v in manifest.items() if k != "signature"})


def content_id(manifest: dict) -> str:
    return hashlib.sha256(canonical_bytes({k: manifest.get(k) for k in CONTENT_FIELDS})).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RegistryError(f"model name {name!r} is not allowed; use letters, digits, '.', '_' or '-' (64 at most)")
    return name


def check_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise RegistryError(f"version {version!r} is not allowed; use an integer or a semver-like string such as 1.2.0")
    return version


def check_file_name(name: str, where: str) -> str:
    """Refuse anything that could leave the version directory (../, absolute paths, hidden or odd names)."""
    if not isinstance(name, str) or not FILE_RE.match(name) or name == MANIFEST:
        raise RegistryError(f"{where} names the unsafe file {name!r}; the entry is corrupt or tampered with, "
                            "so republish it with plain file names")
    return name


def check_manifest(manifest: Any, name: str, version: str) -> dict:
    """Validate a manifest read from a registry for entry `name` `version`; raise one sentence if it is bad."""
    where = f"the manifest of {name} v{version}"
    if not isinstance(manifest, dict) or any(k not in manifest for k in REQUIRED):
        raise RegistryError(f"{where} is missing required fields; republish the entry with `incop publish`")
    if type(manifest["schema_version"]) is not int or manifest["schema_version"] != SCHEMA_VERSION:
        raise RegistryError(f"{where} has schema version {manifest['schema_version']!r} but this incop reads "
                            f"{SCHEMA_VERSION}; install the incop version that published it")
    if manifest["name"] != name or manifest["version"] != version:
        raise RegistryError(f"{where} says it is {manifest['name']} v{manifest['version']}; the entry was moved "
                            "or tampered with, so republish it")
    _check_files(manifest, where)
    _check_types(manifest, where)
    created_at(manifest)
    return manifest


# The type every other field must have when present (the publisher writes exactly these).
FIELD_TYPES = {"created": str, "model_file": str, "input_spec": dict, "metrics": dict, "source": dict, "opset": int,
               "min_onnxruntime": str, "compressed_size": int, "content_id": str, "signature": dict}


def _check_types(manifest: dict, where: str) -> None:
    for field, kind in FIELD_TYPES.items():
        if field in manifest and (type(manifest[field]) is not kind):
            raise RegistryError(f"{where} has a {type(manifest[field]).__name__} for {field} where a "
                                f"{kind.__name__} belongs; the entry is corrupt or tampered with, so republish it")


def _check_files(manifest: dict, where: str) -> None:
    files = manifest["files"]
    if not isinstance(files, dict) or not files:
        raise RegistryError(f"{where} lists no files; republish the entry")
    for file_name, info in files.items():
        check_file_name(file_name, where)
        ok = isinstance(info, dict) and isinstance(info.get("sha256"), str) and SHA_RE.match(info["sha256"])
        if not ok or type(info.get("size")) is not int or info["size"] < 0:
            raise RegistryError(f"{where} has no valid sha256 and size for {file_name!r}; republish the entry")
    if not isinstance(manifest["model_file"], str) or manifest["model_file"] not in files:
        raise RegistryError(f"{where} names model file {manifest['model_file']!r} that it does not list; "
                            "republish the entry")


def read_manifest(data: bytes, name: str, version: str) -> Any:
    """A manifest's JSON, parsed within bounds but not yet checked (verify its signature, then check_manifest)."""
    try:
        return load_json(data)
    except ValueError as exc:
        raise RegistryError(f"the manifest of {name} v{version} is unusable ({exc}); republish the entry") from None


def parse_manifest(data: bytes, name: str, version: str) -> dict:
    return check_manifest(read_manifest(data, name, version), name, version)


def version_dir(name: str, version: str) -> str:
    """Relative path of a version's directory inside the registry."""
    return f"{name}/{VERSIONS}/{version}"


def created_at(manifest: dict) -> datetime:
    """The manifest's `created` time (UTC when it names no zone)."""
    try:
        created = datetime.fromisoformat(manifest["created"])
    except (TypeError, ValueError):
        raise RegistryError(f"the manifest of {manifest.get('name')} v{manifest.get('version')} has no readable "
                            "created time; republish the entry") from None
    return created if created.tzinfo else created.replace(tzinfo=timezone.utc)


def version_order(version: str) -> tuple:
    """Sort key of a version: integers numerically, semver-like strings by their dotted parts (2 < 10 < 10.1)."""
    core = re.split(r"[-+]", str(version), maxsplit=1)[0]
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in core.split("."))


def is_older(candidate: dict, current: dict) -> bool:
    """Whether `candidate` is older than `current`: created time first, then version order (both are signed)."""
    return (created_at(candidate), version_order(candidate["version"])) < \
        (created_at(current), version_order(current["version"]))
