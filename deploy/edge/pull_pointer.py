"""Which version a device following a release channel pulls: NAME/channels/CHANNEL.json, checked.

With a public key the pointer must be signed by it, for this name and this channel (the channel is signed, so a
pointer copied from `candidate` to `stable` is refused), not past its `expires` (a frozen registry), and not
issued before the newest pointer of this channel the device accepted (a replay: DEST/.seen, written through the
device's directory descriptor), and the version's manifest bytes must have the sha256 the pointer names. Without
a key the pointer is followed as the registry serves it, like the plain `latest` of earlier releases.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

from .dirfd import read_at, write_at
from .bounded_json import load_json
from .errors import DeviceError, NotFound, VerificationError
from .manifest import LATEST, MAX_POINTER_BYTES
from .pointers import channel_rel, check_pointer, describe, pointer_time, read_pointer, utc_now
from .pull_device import SEEN, MAX_SEEN_BYTES, Device
from .pull_fetch import Retry, read_small
from .signing import verify_signed


def resolve_channel(source: Any, name: str, channel: str, policy: Retry, key: Any) -> tuple[str, dict]:
    """The version CHANNEL names and its pointer (verified and fresh when `key` is configured)."""
    rel, where = channel_rel(name, channel), f"registry {source.url}"
    try:
        data = read_small(source, rel, policy, MAX_POINTER_BYTES, "")
    except NotFound:
        _check_known(source, name, policy)
        raise NotFound(f"{where} has no channel {channel} for {name}; run `incop promote {name} VERSION --channel "
                       f"{channel}` there, or pull a --version") from None
    pointer = read_pointer(data, name, channel, where)
    if key is not None:
        verify_signed(pointer, key, describe(name, channel, where))
    pointer = check_pointer(pointer, name, channel, where)
    if key is not None:
        _refuse_stale(pointer, channel, where)
    return pointer["version"], pointer


def _check_known(source: Any, name: str, policy: Retry) -> None:
    """An unknown name is reported as such (every publish writes NAME/latest)."""
    read_small(source, f"{name}/{LATEST}", policy, 256,
               f"registry {source.url} has no model named {name}; check --name or publish it first")


def _refuse_stale(pointer: dict, channel: str, where: str) -> None:
    """A signed pointer without an expiry, or past it, is refused: its registry may be frozen on an old version."""
    name, what = pointer["name"], describe(pointer["name"], channel, where)
    refresh = f"`incop registry refresh --name {name} --channel {channel} --key KEY`"
    if "expires" not in pointer:
        raise VerificationError(f"{what} has no expiry, so a frozen or replayed registry cannot be told from a "
                                f"current one; promote the version again or run {refresh} there")
    if pointer_time(pointer, "expires") <= utc_now():
        raise VerificationError(f"{what} (v{pointer['version']}) expired at {pointer['expires']}: the registry is "
                                f"stale or frozen; check that the publisher is running, or run {refresh} there")


def match_pointer(pointer: dict, channel: str, raw: bytes, url: str) -> None:
    """The manifest's raw bytes (before they are parsed) must be the ones the pointer hashed."""
    if hashlib.sha256(raw).hexdigest() != pointer["manifest_sha256"]:
        raise VerificationError(f"the manifest of {pointer['name']} v{pointer['version']} in registry {url} does not "
                                f"match the sha256 in its {channel} pointer; republish it, or move the channel again "
                                f"with `incop promote {pointer['name']} {pointer['version']} --channel {channel}`")


def seen_key(name: str, channel: str) -> str:
    """Where DEST/.seen keeps the newest accepted pointer of a channel (plain NAME keys are latest.json's)."""
    return channel_rel(name, channel)


def seen(device: Device) -> dict:
    """The newest signed pointer accepted per model and channel: {key: {version, issued, expires}}."""
    try:
        data = read_at(device.fd, SEEN, device.dest / SEEN, MAX_SEEN_BYTES)
    except FileNotFoundError:
        return {}
    try:
        found = load_json(data)
        ok = isinstance(found, dict) and all(isinstance(v, dict) and isinstance(v.get("issued"), str)
                                             for v in found.values())
    except ValueError:
        ok = False
    if not ok:
        raise DeviceError(f"{device.dest / SEEN} (the newest pointers this device accepted) is corrupt; remove it "
                          "and re-run the pull")
    return found


def refuse_replay(device: Device, pointer: dict, channel: str, url: str) -> None:
    """A pointer issued before the newest of this channel this device accepted is a replay of an old one."""
    newest = seen(device).get(seen_key(pointer["name"], channel))
    if newest is not None and pointer_time(pointer, "issued") < pointer_time(newest, "issued"):
        raise VerificationError(f"the signed {channel} pointer of {pointer['name']} in registry {url} (v"
                                f"{pointer['version']}, issued {pointer['issued']}) is older than one {device.dest} "
                                f"already accepted (v{newest.get('version')}, issued {newest['issued']}): it is a "
                                "replay; check the registry or mirror you pull from")


def remember(device: Device, pointer: Optional[dict], channel: str) -> None:
    """Record a verified `pointer` as the newest accepted for its channel (written atomically; none: nothing)."""
    if pointer is None:
        return
    entry = {k: pointer[k] for k in ("version", "issued", "expires")}
    updated = {**seen(device), seen_key(pointer["name"], channel): entry}
    write_at(device.fd, SEEN, json.dumps(updated, sort_keys=True, indent=1).encode() + b"\n", device.dest / SEEN)
