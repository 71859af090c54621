"""Publish a model to a registry: files first, the (signed) manifest last, the pointers after it.

Versions are integers counting up from 1 unless the caller names one (any semver-like string). Publishing
content identical to the newest entry writes nothing but its pointers (a channel is never moved back to it) and
returns that entry's manifest. One publisher at a
time holds the name's lock; the next version is chosen inside it and its manifest is created only if absent.
The pointers: NAME/channels/CHANNEL.json (`stable` unless told otherwise), which devices follow, and for devices
of earlier incop releases the plain `latest` and, when signing, NAME/latest.json (release.py writes them all;
promote() and refresh() live there too and are re-exported here).
"""

from __future__ import annotations

import json
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

from .errors import RegistryError
from .inspect import check_input_spec, check_loads, default_opset, load_model, merge_input_spec, \
    min_onnxruntime
from .manifest import (DEFAULT_CHANNEL, DEFAULT_EXPIRES, MANIFEST, SCHEMA_VERSION, canonical_bytes, check_file_name,
                       check_name, check_version, content_id, sha256_file, version_dir)
from .pointers import check_channel, check_expires
from .release import newer_on, point_channel, point_latest, promote, refresh  # noqa: F401 (promote, refresh: API)
from .signing import key_id, load_private_key, sign_manifest
from .store import Store

Files = Union[Path, str, dict]


def publish(registry_url: str, name: str, files: Files, metrics: Optional[dict] = None,
            input_spec: Optional[dict] = None, source: Optional[dict] = None, private_key: Any = None,
            version: Optional[str] = None, min_ort: Optional[str] = None, expires: float = DEFAULT_EXPIRES,
            channel: str = DEFAULT_CHANNEL) -> dict:
    """Publish `files` as NAME and return the manifest.

    `files` is one .onnx path (stored as model.onnx) or {registry file name: local path}; the model run by
    devices is model.onnx when listed, else the first .onnx name. `metrics`, `input_spec` (overrides of what
    the ONNX input says: mean, std, scale, labels, ...) and `source` ({"run", "config_hash"}) are plain JSON.
    `private_key` (path or key; default INCOP_SIGNING_KEY) signs the manifest and the pointers, which devices
    accept for `expires` seconds (re-signed by every publish, identical ones included, and by refresh()).
    `channel` is the release channel moved to this version: `stable` (a release) or e.g. `candidate`.
    """
    return publish_entry(registry_url, name, files, metrics, input_spec, source, private_key, version, min_ort,
                         expires, channel)[0]


def publish_entry(registry_url, name, files, metrics=None, input_spec=None, source=None, private_key=None,
                  version=None, min_ort=None, expires: float = DEFAULT_EXPIRES,
                  channel: str = DEFAULT_CHANNEL) -> tuple[dict, bool]:
    """Like publish(); the flag says whether anything was written (False: identical entry already there)."""
    check_name(name), check_channel(channel)
    expires = check_expires(expires)
    version = check_version(version) if version is not None else None
    key = load_private_key(private_key)
    entry = build_entry(name, _file_map(files), metrics, input_spec, source, min_ort)
    store = Store(registry_url)
    with store.lock(name):
        existing = _same_entry(store, name, entry, key, version)
        if existing is not None:
            if newer_on(store, existing, channel, key) is None:  # republishing an older entry never moves it back
                point_channel(store, existing, channel, key, expires)
            point_latest(store, existing, key, expires)
            return existing, False
        version = version if version is not None else _next_version(store, name)
        if version in store.versions(name):
            raise RegistryError(f"{name} v{version} is already published with different content; "
                                "omit --version to publish the next version or choose another")
        manifest = {**entry, "version": version, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if key is not None:
            manifest = sign_manifest(manifest, key)
        _write_entry(store, manifest, _file_map(files), key, expires, channel)
    return manifest, True


def _file_map(files: Files) -> dict[str, Path]:
    if isinstance(files, (str, Path)):
        files = {"model.onnx": Path(files)}
    if not isinstance(files, dict) or not files:
        raise RegistryError("publish needs a model path or a {file name: path} mapping; pass the exported .onnx")
    for file_name, path in files.items():
        check_file_name(file_name, "the publish request")
        if not Path(path).is_file():
            raise RegistryError(f"model file {path} does not exist; pass the path export wrote")
    return {k: Path(v) for k, v in files.items()}


def _model_file(files: dict[str, Path]) -> str:
    onnx_files = [k for k in files if k.endswith(".onnx")]
    if not onnx_files:
        raise RegistryError("publish got no .onnx file; pass the exported model")
    return "model.onnx" if "model.onnx" in onnx_files else onnx_files[0]


def _describe(path: Path) -> dict:
    compressed, packer = 0, zlib.compressobj(6)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            compressed += len(packer.compress(chunk))
    compressed += len(packer.flush())
    return {"sha256": sha256_file(path), "size": path.stat().st_size, "compressed_size": compressed}


def _json_dict(value: Optional[dict], what: str) -> dict:
    value = dict(value or {})
    try:
        canonical_bytes(value)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{what} must be plain JSON without NaN or infinity ({exc}); fix the {what}") from None
    return json.loads(canonical_bytes(value))


def build_entry(name: str, files: dict[str, Path], metrics, input_spec, source, min_ort) -> dict:
    """Everything in the manifest except version, created time and signature."""
    from .model_checks import check_runs

    model_file = _model_file(files)
    model = load_model(files[model_file])
    check_loads(files[model_file])
    spec = check_input_spec(model, _json_dict(merge_input_spec(model, input_spec), "input spec"))
    check_runs(files[model_file], model, spec)  # as a device will run it, before anything is signed or written
    opset = default_opset(model)
    described = {k: _describe(p) for k, p in sorted(files.items())}
    entry = {"schema_version": SCHEMA_VERSION, "name": name, "files": described, "model_file": model_file,
             "compressed_size": sum(d["compressed_size"] for d in described.values()),
             "metrics": _json_dict(metrics, "metrics"), "input_spec": spec, "opset": opset,
             "min_onnxruntime": min_ort or min_onnxruntime(opset), "source": _json_dict(source, "source")}
    return {**entry, "content_id": content_id(entry)}


def _same_entry(store: Store, name: str, entry: dict, key: Any, version: Optional[str]) -> Optional[dict]:
    """An existing manifest with the same content and signer: the named version, else latest or newest."""
    signer = key_id(key.public_key()) if key is not None else None
    candidates = [version] if version is not None else [store.latest(name), *store.versions(name)[-1:]]
    for candidate in filter(None, candidates):
        if candidate not in store.versions(name):
            continue
        manifest = store.manifest(name, candidate)
        if manifest.get("content_id") == entry["content_id"] and _signer(manifest) == signer:
            return manifest
    return None


def _signer(manifest: dict) -> Optional[str]:
    signature = manifest.get("signature")
    return signature.get("key_id") if isinstance(signature, dict) else None


def _next_version(store: Store, name: str) -> str:
    numbers = [int(v) for v in store.versions(name) if v.isdigit()]
    return str(max(numbers, default=0) + 1)


def _write_entry(store: Store, manifest: dict, files: dict[str, Path], key: Any, expires: float,
                 channel: str) -> None:
    """Model files, then the manifest (created only if absent: the entry exists from here on), then the pointers."""
    name, version = manifest["name"], manifest["version"]
    base = version_dir(name, version)
    for file_name, path in files.items():
        store.put_file(path, f"{base}/{file_name}")
    if not store.create_bytes(f"{base}/{MANIFEST}", json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"):
        raise RegistryError(f"{name} v{version} was claimed by another publish at the same moment; re-run the "
                            "publish to get the next version")
    point_channel(store, manifest, channel, key, expires, new=True)
    point_latest(store, manifest, key, expires)
