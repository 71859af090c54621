"""The pointers devices follow: NAME/latest.json (old devices) and NAME/channels/CHANNEL.json (release channels).

A pointer names one version of one model and the sha256 of that version's manifest bytes, and carries the time
it was issued and the time it expires. A channel pointer also names its channel, and `rollback: true` when the
publisher moved the channel back on purpose. Both are signed like a manifest (signing.sign_manifest over their
canonical bytes) when the publisher holds a key. Shared by publisher and device: standard library only.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

from .bounded_json import load_json
from .errors import RegistryError
from .manifest import CHANNELS, DEFAULT_EXPIRES, NAME_RE, SHA_RE, check_version

MAX_EXPIRES = 366 * 86400


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def check_channel(channel: Any) -> str:
    if not isinstance(channel, str) or not NAME_RE.match(channel):
        raise RegistryError(f"channel name {channel!r} is not allowed; use letters, digits, '.', '_' or '-' "
                            "(64 at most), such as stable or candidate")
    return channel


def channel_rel(name: str, channel: str) -> str:
    """Relative path of a channel pointer inside the registry."""
    return f"{name}/{CHANNELS}/{channel}.json"


def check_expires(expires: Any) -> float:
    ok = isinstance(expires, (int, float)) and not isinstance(expires, bool) and 1 <= expires <= MAX_EXPIRES
    if not ok:
        raise RegistryError(f"the pointer expiry must be between 1 s and {MAX_EXPIRES // 86400:g} days (got "
                            f"{expires!r}); pass --expires such as 7d, 12h or 3600")
    return float(expires)


def latest_pointer(manifest: dict, manifest_bytes: bytes, expires: float = DEFAULT_EXPIRES) -> dict:
    """The (to be signed) `latest.json` naming `manifest` and the sha256 of its bytes in the registry, issued now
    and valid for `expires` seconds: a device refuses it after that (a frozen registry) or once it has seen a
    pointer issued later (a replayed one)."""
    now = utc_now()
    return {"name": manifest["name"], "version": manifest["version"], "created": manifest["created"],
            "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(), "issued": stamp(now),
            "expires": stamp(now + timedelta(seconds=expires))}


def channel_pointer(manifest: dict, manifest_bytes: bytes, channel: str, expires: float = DEFAULT_EXPIRES,
                    rollback: bool = False) -> dict:
    """A latest pointer that also names its channel (signed with it, so it cannot be copied to another channel)
    and, when the channel is moved back on purpose, `rollback: true`."""
    pointer = {**latest_pointer(manifest, manifest_bytes, expires), "channel": check_channel(channel)}
    return {**pointer, "rollback": True} if rollback else pointer


def pointer_time(pointer: dict, field: str) -> datetime:
    moment = datetime.fromisoformat(pointer[field])
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def describe(name: str, channel: str, where: str) -> str:
    """How sentences name a channel pointer: "the stable pointer of tiny in registry URL"."""
    return f"the {channel} pointer of {name} in {where}"


def _fix(name: str, channel: str) -> str:
    return f"move the channel again with `incop promote {name} VERSION --channel {channel}` or pass --version"


def read_pointer(data: bytes, name: str, channel: str, where: str) -> dict:
    """A channel pointer parsed within bounds, before its signature is checked (check_pointer comes after)."""
    what = describe(name, channel, where)
    try:
        pointer = load_json(data, max_depth=2)
    except ValueError as exc:
        raise RegistryError(f"{what} is unusable ({exc}); {_fix(name, channel)}") from None
    if not isinstance(pointer, dict):
        raise RegistryError(f"{what} is not a JSON object; {_fix(name, channel)}")
    return pointer


def check_pointer(pointer: dict, name: str, channel: str, where: str) -> dict:
    """Raise one sentence unless a (verified) pointer is for `name` on `channel` and names a version, a sha256,
    readable times and, if any, a boolean rollback flag."""
    what = describe(name, channel, where)
    if pointer.get("name") != name or pointer.get("channel") != channel:
        raise RegistryError(f"{what} is for {str(pointer.get('name'))[:64]} on channel "
                            f"{str(pointer.get('channel'))[:64]}, not {name} on {channel}: it was copied from "
                            f"another pointer or tampered with; {_fix(name, channel)}")
    try:
        ok = bool(SHA_RE.match(pointer["manifest_sha256"])) and type(pointer.get("rollback", False)) is bool
        check_version(pointer["version"])
        if "expires" in pointer or "issued" in pointer:
            pointer_time(pointer, "expires"), pointer_time(pointer, "issued")
    except (ValueError, KeyError, TypeError, RegistryError):
        ok = False
    if not ok:
        raise RegistryError(f"{what} is corrupt; {_fix(name, channel)}")
    return pointer
