"""Move the pointers devices follow: a version onto a release channel (publish, promote), and re-sign (refresh).

NAME/channels/CHANNEL.json names the version a device following CHANNEL runs (`stable` by default; the pipeline
publishes to `candidate` and promotes). It is signed like latest.json when a key is used, written atomically
after the version's manifest exists, and never moved to an older version unless the move is a rollback, which
the signed pointer then says (`rollback: true`), so devices follow it down. Every move holds the name's lock.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

from .bounded_json import load_json
from .errors import NotFound, RegistryError, VerificationError
from .manifest import DEFAULT_CHANNEL, DEFAULT_EXPIRES, LATEST, MANIFEST, MAX_POINTER_BYTES, SIGNED_LATEST, \
    canonical_bytes, check_name, check_version, is_older, version_dir
from .pointers import channel_pointer, channel_rel, check_channel, check_expires, latest_pointer
from .signing import key_id, load_private_key, sign_manifest, verify_manifest, verify_signed
from .store import Store


def promote(registry_url: str, name: str, version: str, channel: str = DEFAULT_CHANNEL, private_key: Any = None,
            expires: float = DEFAULT_EXPIRES, rollback: bool = False) -> dict:
    """Point CHANNEL of NAME at VERSION (signed with `private_key`, default INCOP_SIGNING_KEY, valid `expires`
    seconds) and return the pointer. An older version than the channel names needs `rollback`."""
    check_name(name), check_version(version), check_channel(channel)
    expires, key = check_expires(expires), load_private_key(private_key)
    store = Store(registry_url)
    with store.lock(name):
        if version not in store.versions(name):
            raise NotFound(f"{name} has no version {version} in registry {registry_url}; promote one that "
                           f"`incop registry list {registry_url}` shows")
        manifest = store.manifest(name, version)
        if key is not None:
            _check_signed_by(manifest, key)
        check_channel_key(store, name, channel, key)
        return point_channel(store, manifest, channel, key, expires, rollback)


def refresh(registry_url: str, name: str, private_key: Any = None, expires: float = DEFAULT_EXPIRES,
            channel: Optional[str] = None) -> dict:
    """Re-sign NAME/latest.json, or with `channel` that channel's pointer, for the version it names, valid
    `expires` seconds from now; return the pointer. Run it (a schedule does) more often than `expires` when
    nothing new is published or promoted, or devices refuse the pointer as stale."""
    check_name(name)
    channel = check_channel(channel) if channel is not None else None
    expires, key = check_expires(expires), load_private_key(private_key)
    if key is None:
        raise RegistryError("refresh signs a pointer, so it needs the private key; pass --key or set "
                            "INCOP_SIGNING_KEY")
    store = Store(registry_url)
    with store.lock(name):
        if channel is not None:
            current = current_version(store, name, channel, key, strict=True)
            if current is None:
                raise RegistryError(f"{name} has no channel {channel} in registry {registry_url} whose pointer key "
                                    f"{key_id(key.public_key())} signed for the manifest it names (missing, or changed "
                                    f"since); run `incop promote {name} VERSION --channel {channel}` to write one")
            return point_channel(store, current[0], channel, key, expires, current[1])
        latest = store.latest(name)
        if latest is None:
            raise RegistryError(f"registry {registry_url} has no model named {name}; check --name or publish it first")
        point_latest(store, store.manifest(name, latest), key, expires)
    return json.loads(store.read_bytes(f"{name}/{SIGNED_LATEST}"))


def point_latest(store: Store, manifest: dict, key: Any, expires: float) -> None:
    """Make the signed pointer (when signing: issued now, valid `expires` s) and the plain `latest` name
    `manifest`; the plain pointer is rewritten only when it differs."""
    name, version = manifest["name"], manifest["version"]
    if key is not None:
        pointer = latest_pointer(manifest, _stored(store, manifest), expires)
        store.write_bytes(f"{name}/{SIGNED_LATEST}", canonical_bytes(sign_manifest(pointer, key)))
    if store.latest(name) != version:
        store.write_bytes(f"{name}/{LATEST}", f"{version}\n".encode())


def point_channel(store: Store, manifest: dict, channel: str, key: Any, expires: float,
                  rollback: bool = False, new: bool = False) -> dict:
    """Write CHANNEL's pointer to `manifest` (signed when `key`); refuse moving it back unless `rollback`.
    A `new` version (just published, so created last) always moves it: an equal created second is no rollback."""
    name, version = manifest["name"], manifest["version"]
    newer = None if new or rollback else newer_on(store, manifest, channel, key)
    if newer is not None:
        raise RegistryError(f"channel {channel} of {name} names v{newer}, which is newer than v{version}; run "
                            f"`incop promote {name} {version} --channel {channel} --rollback` to move it back on "
                            "purpose (devices following it then install the older version)")
    pointer = channel_pointer(manifest, _stored(store, manifest), channel, expires, rollback)
    pointer = sign_manifest(pointer, key) if key is not None else pointer
    store.write_bytes(channel_rel(name, channel), canonical_bytes(pointer))
    return pointer


def newer_on(store: Store, manifest: dict, channel: str, key: Any) -> Optional[str]:
    """The version CHANNEL names when it is newer than `manifest` (created time, then version order), else None."""
    current = current_version(store, manifest["name"], channel, key)
    if current is None or current[0]["version"] == manifest["version"] or not is_older(manifest, current[0]):
        return None
    return current[0]["version"]


def check_channel_key(store: Store, name: str, channel: str, key: Any) -> None:
    """Refuse to promote unsigned over a signed channel pointer (a forgotten --key): every device that verifies
    would refuse the new pointer."""
    pointer = _pointer(store, name, channel)
    if key is None and isinstance(pointer, dict) and "signature" in pointer:
        raise RegistryError(f"channel {channel} of {name} in registry {store.url} is signed, and an unsigned "
                            "pointer would be refused by every device that verifies; pass --key or set "
                            "INCOP_SIGNING_KEY")


def current_version(store: Store, name: str, channel: str, key: Any, strict: bool = False
                    ) -> Optional[tuple[dict, bool]]:
    """The manifest CHANNEL names now and its rollback flag; None when there is no pointer, or none this
    publisher can trust (unreadable, naming a missing version, or signed but not by `key`): those are
    overwritten, which repairs them. `strict` (refresh) also needs the pointer signed by `key` and the manifest
    bytes it hashed, so a refresh never signs what someone else wrote."""
    pointer = _pointer(store, name, channel)
    if not isinstance(pointer, dict) or pointer.get("name") != name or pointer.get("channel") != channel:
        return None
    try:
        if key is not None and ("signature" in pointer or strict):
            verify_signed(pointer, key.public_key(), f"the {channel} pointer of {name}")
        manifest = store.manifest(name, check_version(pointer.get("version")))
        if strict and hashlib.sha256(_stored(store, manifest)).hexdigest() != pointer.get("manifest_sha256"):
            return None
        return manifest, pointer.get("rollback") is True
    except RegistryError:
        return None


def channel_versions(store: Store, name: str) -> dict[str, str]:
    """{channel: version} for every channel pointer of NAME, unverified (for listings); '?' when unreadable."""
    base = store.path(f"{name}/channels")
    if not store.fs.isdir(base):
        return {}
    found = [e.rstrip("/").rsplit("/", 1)[-1] for e in store.fs.ls(base, detail=False)]
    channels = sorted(f[:-5] for f in found if f.endswith(".json") and not f.startswith("."))
    out = {}
    for channel in channels:
        pointer = _pointer(store, name, channel)
        out[channel] = str(pointer["version"]) if isinstance(pointer, dict) and "version" in pointer else "?"
    return out


def _pointer(store: Store, name: str, channel: str) -> Any:
    try:
        data = store.read_bytes(channel_rel(name, channel))
        return load_json(data, max_depth=2) if len(data) <= MAX_POINTER_BYTES else None
    except (NotFound, ValueError):
        return None


def _stored(store: Store, manifest: dict) -> bytes:
    return store.read_bytes(f"{version_dir(manifest['name'], manifest['version'])}/{MANIFEST}")


def _check_signed_by(manifest: dict, key: Any) -> None:
    try:
        verify_manifest(manifest, key.public_key())
    except VerificationError:
        raise VerificationError(f"{manifest['name']} v{manifest['version']}'s manifest does not verify with the "
                                f"public half of the promoting key {key_id(key.public_key())}, so devices trusting "
                                "that key would refuse it; promote with the key that published it or republish it "
                                "with --key") from None
