"""Ed25519 signatures over the canonical bytes of a manifest or a latest pointer (`signature` excluded).

`cryptography` is imported only when a key is used, so devices that do not verify need not install it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path
from typing import Any, Optional

from .errors import RegistryError, VerificationError
from .manifest import signed_payload

PRIVATE_ENV = "INCOP_SIGNING_KEY"
PUBLIC_ENV = "INCOP_PUBLIC_KEY"
CRYPTO_PIN = "cryptography==50.0.2"
STEM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _serialization():
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise RegistryError(f"signing and verifying need the cryptography package; install it with "
                            f"`pip install {CRYPTO_PIN}`") from None
    return serialization


def _raw_public(public_key: Any) -> bytes:
    s = _serialization()
    return public_key.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)


def key_id(public_key: Any) -> str:
    """A short fingerprint of a public key: the first 16 hex digits of sha256 of its raw 32 bytes."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def generate_keys(out_dir: Path, stem: str = "incop", force: bool = False) -> tuple[Path, Path]:
    """Write a new key pair as PEM: STEM.key (private, mode 600) and STEM.pub; return both paths.

    Each file is written to a temporary name, synced and renamed, so a full disk leaves no half key behind.
    """
    s = _serialization()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not isinstance(stem, str) or not STEM_RE.match(stem):
        raise RegistryError(f"key name stem {stem!r} is not a plain file name; use letters, digits, '.', '_' or '-' "
                            "and choose the directory with --out")
    private_path, public_path = Path(out_dir) / f"{stem}.key", Path(out_dir) / f"{stem}.pub"
    if not force and (os.path.lexists(private_path) or os.path.lexists(public_path)):
        raise RegistryError(f"{private_path} or {public_path} already exists; choose another --out or pass --force")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    public_pem = key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    _write_key(private_path, private_pem, 0o600)
    _write_key(public_path, public_pem, 0o644)
    return private_path, public_path


def _write_key(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _load(path: Path, private: bool) -> Any:
    s = _serialization()
    from cryptography.hazmat.primitives.asymmetric import ed25519

    kind = "private" if private else "public"
    try:
        data = Path(path).read_bytes()
        key = s.load_pem_private_key(data, None) if private else s.load_pem_public_key(data)
    except (OSError, ValueError, TypeError) as exc:
        raise RegistryError(f"cannot read the {kind} key {path} ({exc}); point to a key made by "
                            "`incop keys generate`") from None
    expected = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, expected):
        raise RegistryError(f"{path} is not an ed25519 {kind} key; use a key made by `incop keys generate`")
    return key


def _from_env(name: str) -> Optional[str]:
    """The key path in environment variable `name`; set but empty is a misconfiguration, never "no key"."""
    value = os.environ.get(name)
    if value is not None and not value.strip():
        raise RegistryError(f"{name} is set but empty; point it at a key file or unset it")
    return value


def load_private_key(key: Any) -> Optional[Any]:
    """A private key from a path, an already loaded key, or the INCOP_SIGNING_KEY environment variable."""
    if key is None:
        key = _from_env(PRIVATE_ENV)
    if key is None or not isinstance(key, (str, os.PathLike)):
        return key
    return _load(Path(key), private=True)


def load_public_key(key: Any, anchor: Optional[Path] = None) -> Optional[Any]:
    """A public key from a path, a loaded key, INCOP_PUBLIC_KEY, or the device's trust anchor `anchor`.

    Fails closed: a key that is configured or present in any form (a directory, a dangling link, an unreadable
    or foreign file) is an error, never "no key". Only an `anchor` that does not exist at all means unsigned.
    """
    if key is None:
        key = _from_env(PUBLIC_ENV)
    if key is None and anchor is not None and os.path.lexists(anchor):
        if not Path(anchor).is_file():
            what = "a dangling symbolic link" if Path(anchor).is_symlink() and not Path(anchor).exists() else \
                "not a regular file"
            raise VerificationError(f"the trust anchor {anchor} is {what}, so nothing can be verified; restore the "
                                    "public key file there (or remove it to pull unsigned models)")
        key = anchor
    if key is None or not isinstance(key, (str, os.PathLike)):
        return key
    if not Path(key).is_file():
        raise VerificationError(f"the public key {key} is not a readable file, so nothing can be verified; point "
                                "--public-key or INCOP_PUBLIC_KEY at the .pub file from `incop keys generate`")
    return _load(Path(key), private=False)


def sign_manifest(manifest: dict, private_key: Any) -> dict:
    """Return a copy of `manifest` with an ed25519 `signature` over its canonical bytes."""
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    value = private_key.sign(signed_payload(unsigned))
    kid = key_id(private_key.public_key())
    return {**unsigned, "signature": {"alg": "ed25519", "key_id": kid, "value": base64.b64encode(value).decode()}}


def verify_manifest(manifest: dict, public_key: Any) -> None:
    """Raise VerificationError unless `manifest` carries a valid signature by `public_key`."""
    verify_signed(manifest, public_key, f"{manifest.get('name')} v{manifest.get('version')}")


def verify_signed(signed: dict, public_key: Any, where: str) -> None:
    """Raise VerificationError unless `signed` (a manifest or a latest pointer, called `where`) verifies."""
    from cryptography.exceptions import InvalidSignature

    sig = signed.get("signature")
    if not isinstance(sig, dict) or sig.get("alg") != "ed25519" or not isinstance(sig.get("value"), str):
        raise VerificationError(f"{where} is not signed but a public key is configured; publish it with --key "
                                "or pull from a registry you trust")
    try:
        public_key.verify(base64.b64decode(sig["value"], validate=True), signed_payload(signed))
    except (InvalidSignature, ValueError, TypeError):
        mine = key_id(public_key)
        if sig.get("key_id") == mine:
            raise VerificationError(f"{where} was changed after it was signed by key {mine} (the signature no longer "
                                    "matches its content): it is corrupt or tampered with, so republish it") from None
        raise VerificationError(f"the signature of {where} (key {str(sig.get('key_id'))[:20]}) does not match the "
                                f"configured public key {mine}; check --public-key or republish with the right "
                                "--key") from None
