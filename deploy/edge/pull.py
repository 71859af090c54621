"""`incop pull` and `incop rollback`: fetch a verified model onto a device and swap it in atomically.

Order: resolve the version (what the release channel's pointer names: pull_pointer.py), read the manifest
(bounded: size, nesting and number length), verify it (against the pointer's sha256 of its raw bytes, then its
signature when a public key is configured), check its schema, take the device lock, download each file into
DEST/.partial (resuming), verify size and sha256, move the version into DEST/versions, then swap the `current` link.
Any failure before the swap
leaves `current` as it was. Imports neither torch nor prefect: a device needs onnxruntime and numpy only.
A version older than the running one needs allow_downgrade, or a channel pointer that says `rollback: true`
(signed, when a public key is configured). An explicit `version` ignores channels.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, Optional

from .errors import DeviceError, RegistryError, VerificationError
from .manifest import DEFAULT_CHANNEL, MANIFEST, MAX_MANIFEST_BYTES, check_manifest, check_name, check_version, \
    is_older, read_manifest, version_dir
from .pointers import check_channel
from .pull_device import CURRENT, PREVIOUS, Device
from .pull_fetch import Retry, fetch, read_small
from .pull_pointer import match_pointer, refuse_replay, remember, resolve_channel
from .pull_source import source_for
from .signing import load_public_key, verify_manifest


def pull(registry: str, name: str, dest: Path, version: Optional[str] = None, public_key: Any = None,
         retries: int = 4, backoff: float = 0.5, timeout: float = 30.0, deadline: Optional[float] = None,
         min_rate: float = 10 * 1024, rate_window: float = 10.0, allow_downgrade: bool = False,
         channel: str = DEFAULT_CHANNEL) -> dict:
    """Make DEST/current the verified NAME (what `channel` names, or `version`); return what happened."""
    device, policy = Device(Path(dest)), Retry(retries, backoff, deadline, min_rate, rate_window)
    key = load_public_key(public_key, device.trusted_key)
    source = source_for(registry, timeout)
    check_name(name), check_channel(channel)
    version, pointer = (check_version(version), None) if version else \
        resolve_channel(source, name, channel, policy, key)
    raw, manifest = _manifest(source, name, version, pointer, channel, policy, key)
    check_runtime(manifest)
    signed = pointer if key is not None else None  # only a verified pointer is remembered against replays
    with device.locked():
        device.check_paths(version)
        if signed is not None:
            refuse_replay(device, signed, channel, source.url)
        if device.link(CURRENT) == version and device.is_complete(version, manifest):
            remember(device, signed, channel)
            return _result(device, manifest, changed=False)
        if not (allow_downgrade or (pointer or {}).get("rollback") is True):
            _refuse_downgrade(device, manifest)
        if not device.is_complete(version, manifest):
            with device.staging(version) as stage:
                _download(stage, source, manifest, policy)
                device.install(stage, raw)
        device.switch(version)
        remember(device, signed, channel)
        device.prune()
    return _result(device, manifest, changed=True)


def _manifest(source: Any, name: str, version: str, pointer: Optional[dict], channel: str, policy: Retry,
              key: Any) -> tuple[bytes, dict]:
    """The version's manifest: its raw bytes and, checked against the pointer and the key, its content."""
    missing = f"{name} has no version {version} in registry {source.url}; " + \
        (f"move channel {channel} to a published one with `incop promote {name} VERSION --channel {channel}`"
         if pointer is not None else f"omit --version to pull what channel {channel} names")
    raw = read_small(source, f"{version_dir(name, version)}/{MANIFEST}", policy, MAX_MANIFEST_BYTES, missing)
    if pointer is not None and key is not None:
        match_pointer(pointer, channel, raw, source.url)  # the raw bytes, before they are parsed
    manifest = read_manifest(raw, name, version)
    if key is not None:
        verify_manifest(manifest, key)
    return raw, check_manifest(manifest, name, version)


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
