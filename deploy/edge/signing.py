"""Ed25519 signatures over the canonical bytes of a manifest or a latest pointer (`signature` excluded).

`cryptography` is imported only when a key is used, so devices that do not verify need not install it.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any, Optional

from .errors import RegistryError, VerificationError
from .manifest import signed_payload

PRIVATE_ENV = "INCOP_SIGNING_KEY"
PUBLIC_ENV = "INCOP_PUBLIC_KEY"
CRYPTO_PIN = "cryptography==50.0.2"


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
    """Write a new key pair as PEM: STEM.key (private, mode 600) and STEM.pub; return both paths."""
    s = _serialization()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = Path(out_dir) / f"{stem}.key", Path(out_dir) / f"{stem}.pub"
    if not force and (private_path.exists() or public_path.exists()):
        raise RegistryError(f"{private_path} or {public_path} already exists; choose another --out or pass --force")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    public_pem = key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path


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


def load_private_key(key: Any) -> Optional[Any]:
    """A private key from a path, an already loaded key, or the INCOP_SIGNING_KEY environment variable."""
    if key is None:
        key = os.environ.get(PRIVATE_ENV) or None
    if key is None or not isinstance(key, (str, os.PathLike)):
        return key
    return _load(Path(key), private=True)


def load_public_key(key: Any, fallback: Optional[Path] = None) -> Optional[Any]:
    """A public key from a path, a loaded key, INCOP_PUBLIC_KEY, or `fallback` when that file exists."""
    if key is None:
        key = os.environ.get(PUBLIC_ENV) or None
    if key is None and fallback is not None and Path(fallback).is_file():
        key = fallback
    if key is None or not isinstance(key, (str, os.PathLike)):
        return key
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
    except (InvalidSignature, ValueError):
        raise VerificationError(f"the signature of {where} (key {sig.get('key_id')}) does not match the configured "
                                f"public key {key_id(public_key)}; check --public-key or republish with the right "
                                "--key") from None
