"""`incop pull` and `incop rollback`: fetch a verified model onto a device and swap it in atomically.

Order: resolve the version, read the manifest (bounded: size, nesting and number length), verify it
(against the signed pointer's sha256 of its raw bytes, then its signature, when a public key is configured),
check its schema, take the device lock, download each file into DEST/.partial (resuming), verify size and
sha256, move the version into DEST/versions, then swap the `current` link. Any failure before the swap
leaves `current` as it was. Imports neither torch nor prefect: a device needs onnxruntime and numpy only.
With a public key the latest version comes from the signed NAME/latest.json, not the plain `latest`, and
that pointer must be fresh: not past its `expires` (a frozen registry) and not issued before the newest one
this device accepted (a replay); a version older than the running one needs allow_downgrade.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

from .errors import DeviceError, NotFound, RegistryError, VerificationError
from .manifest import LATEST, MANIFEST, MAX_MANIFEST_BYTES, MAX_POINTER_BYTES, SIGNED_LATEST, check_manifest, \
    check_name, check_pointer, check_version, is_older, pointer_time, read_manifest, read_pointer, utc_now, \
    version_dir
from .pull_device import CURRENT, PREVIOUS, Device
from .pull_fetch import Retry, fetch, read_small
from .pull_source import source_for
from .signing import load_public_key, verify_manifest, verify_signed


def pull(registry: str, name: str, dest: Path, version: Optional[str] = None, public_key: Any = None,
         retries: int = 4, backoff: float = 0.5, timeout: float = 30.0, deadline: Optional[float] = None,
         min_rate: float = 10 * 1024, rate_window: float = 10.0, allow_downgrade: bool = False) -> dict:
    """Make DEST/current the verified NAME (latest, or `version`); return what happened."""
    device, policy = Device(Path(dest)), Retry(retries, backoff, deadline, min_rate, rate_window)
    key = load_public_key(public_key, device.trusted_key)
    source = source_for(registry, timeout)
    check_name(name)
    version, pointer = (check_version(version), None) if version else _resolve_latest(source, name, policy, key)
    raw = read_small(source, f"{version_dir(name, version)}/{MANIFEST}", policy, MAX_MANIFEST_BYTES,
                     f"{name} has no version {version} in registry {registry}; omit --version to pull the latest")
    if pointer is not None:
        _match_pointer(pointer, raw, source.url)  # the raw bytes, before they are parsed
    manifest = read_manifest(raw, name, version)
    if key is not None:
        verify_manifest(manifest, key)
    manifest = check_manifest(manifest, name, version)
    check_runtime(manifest)
    with device.locked():
        device.check_paths(version)
        if pointer is not None:
            _refuse_replay(device, pointer, source.url)
        if device.link(CURRENT) == version and device.is_complete(version, manifest):
            _remember(device, pointer)
            return _result(device, manifest, changed=False)
        if not allow_downgrade:
            _refuse_downgrade(device, manifest)
        if not device.is_complete(version, manifest):
            with device.staging(version) as stage:
                _download(stage, source, manifest, policy)
                device.install(stage, raw)
        device.switch(version)
        _remember(device, pointer)
        device.prune()
    return _result(device, manifest, changed=True)


def rollback(dest: Path, public_key: Any = None) -> dict:
    """Swap DEST/current and DEST/previous after re-verifying the previous version's files."""
    device = Device(Path(dest))
    key = load_public_key(public_key, device.trusted_key)
    with device.locked():
        current, previous = device.link(CURRENT), device.link(PREVIOUS)
        if previous is None or current is None:
            raise DeviceError(f"{dest} has no previous version to roll back to; pull at least two versions first")
        device.check_paths(previous)
        manifest = _stored(device, previous)
        if key is not None:
            verify_manifest(manifest, key)
        if not device.is_complete(previous, manifest):
            raise VerificationError(f"the previous version {previous} in {dest} is damaged; pull it again with "
                                    f"--version {previous}")
        device.swap()
    return _result(device, manifest, changed=True)


def _stored(device: Device, version: str) -> dict:
    try:
        return device.stored_manifest(version)
    except (OSError, RegistryError):
        raise VerificationError(f"version {version} in {device.dest} has no readable manifest; pull it again "
                                f"with --version {version}") from None


def _resolve_latest(source: Any, name: str, policy: Retry, key: Any) -> tuple[str, Optional[dict]]:
    """The latest version and, when a public key is configured, the signed pointer that named it."""
    if key is None:
        return _latest(source, name, policy), None
    try:
        data = read_small(source, f"{name}/{SIGNED_LATEST}", policy, MAX_POINTER_BYTES, "")
    except NotFound:
        _latest(source, name, policy)  # an unknown name is reported as such
        raise VerificationError(f"the latest pointer of {name} in registry {source.url} is not signed (there is no "
                                f"{SIGNED_LATEST}) but a public key is configured; publish {name} with --key or pass "
                                "--version") from None
    where = f"registry {source.url}"
    pointer = read_pointer(data, name, where)
    verify_signed(pointer, key, f"the latest pointer of {name} in {where}")
    pointer = check_pointer(pointer, name, where)
    _refuse_stale(pointer, where)
    return pointer["version"], pointer


def _refuse_stale(pointer: dict, where: str) -> None:
    """A pointer without an expiry, or past it, is refused: its registry may be frozen on an old version."""
    name = pointer["name"]
    if "expires" not in pointer:
        raise VerificationError(f"the signed latest pointer of {name} in {where} has no expiry, so a frozen or "
                                f"replayed registry cannot be told from a current one; publish {name} again or run "
                                f"`incop registry refresh --name {name} --key KEY` there")
    if pointer_time(pointer, "expires") <= utc_now():
        raise VerificationError(f"the signed latest pointer of {name} in {where} (v{pointer['version']}) expired at "
                                f"{pointer['expires']}: the registry is stale or frozen; check that the publisher is "
                                f"running, or run `incop registry refresh --name {name} --key KEY` there")


def _refuse_replay(device: Device, pointer: dict, url: str) -> None:
    """A pointer issued before the newest this device accepted is a replay of an old one."""
    newest = device.seen().get(pointer["name"])
    if newest is not None and pointer_time(pointer, "issued") < pointer_time(newest, "issued"):
        raise VerificationError(f"the signed latest pointer of {pointer['name']} in registry {url} (v"
                                f"{pointer['version']}, issued {pointer['issued']}) is older than one {device.dest} "
                                f"already accepted (v{newest.get('version')}, issued {newest['issued']}): it is a "
                                "replay; check the registry or mirror you pull from")


def _remember(device: Device, pointer: Optional[dict]) -> None:
    if pointer is not None:
        device.remember(pointer)


def _match_pointer(pointer: dict, raw: bytes, url: str) -> None:
    if hashlib.sha256(raw).hexdigest() != pointer["manifest_sha256"]:
        raise VerificationError(f"the manifest of {pointer['name']} v{pointer['version']} in registry {url} does not "
                                f"match its signed latest pointer; republish {pointer['name']} with --key")


def _refuse_downgrade(device: Device, manifest: dict) -> None:
    """Refuse a version older than the running one (created time, then version order; both are signed)."""
    current = device.link(CURRENT)
    if current is None or current == manifest["version"]:
        return
    try:
        running = device.stored_manifest(current)
        older = is_older(manifest, running)
    except (OSError, RegistryError):
        return  # no readable record of what runs, so nothing to compare with: a re-pull repairs it
    if older:
        raise VerificationError(f"{manifest['name']} v{manifest['version']} (created {manifest['created']}) is older "
                                f"than v{current} (created {running['created']}) that {device.dest} runs; pass "
                                "--allow-downgrade to install it anyway")


def _latest(source: Any, name: str, policy: Retry) -> str:
    data = read_small(source, f"{name}/{LATEST}", policy, 256,
                      f"registry {source.url} has no model named {name}; check --name or publish it first")
    try:
        return check_version(data.decode().strip())
    except (UnicodeDecodeError, RegistryError):
        raise VerificationError(f"the latest pointer of {name} in {source.url} is corrupt; republish {name} "
                                "or pass --version") from None


def _download(stage: Any, source: Any, manifest: dict, policy: Retry) -> None:
    """Fetch every file of `manifest` into the staging directory (a Stage: written only through its descriptor)."""
    need = sum(info["size"] for info in manifest["files"].values()) - stage.size()
    free = stage.free()
    if need > free:
        raise DeviceError(f"{manifest['name']} v{manifest['version']} needs {need} more bytes but {stage.shown} "
                          f"has {free} free; free space on the device and re-run the pull")
    base = version_dir(manifest["name"], manifest["version"])
    for file_name, info in sorted(manifest["files"].items()):
        fetch(source, f"{base}/{file_name}", stage.file(file_name), info, policy)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_runtime(manifest: dict) -> None:
    """Refuse a model that needs a newer onnxruntime than the device has (skipped when it has none)."""
    needed = manifest.get("min_onnxruntime")
    try:
        installed = metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return
    if needed and _version_tuple(installed) < _version_tuple(needed):
        raise RegistryError(f"{manifest['name']} v{manifest['version']} needs onnxruntime >= {needed} but this "
                            f"device has {installed}; upgrade onnxruntime or pull an older --version")


def _result(device: Device, manifest: dict, changed: bool) -> dict:
    return {"name": manifest["name"], "version": device.link(CURRENT), "previous": device.link(PREVIOUS),
            "changed": changed, "path": str(device.dest / CURRENT), "manifest": manifest}
