"""Downloads with retries, exponential backoff and resume (HTTP Range), verified against the manifest."""

from __future__ import annotations

import errno
import http.client
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .pull_source import Missing, RangeRefused, Transient
from .registry_errors import DeviceError, NotFound, Unreachable, VerificationError
from .registry_manifest import sha256_file

CHUNK = 1 << 16


@dataclass(frozen=True)
class Retry:
    """How hard to try: `retries` more attempts after the first, waiting backoff, 2*backoff, ... between."""

    retries: int = 4
    backoff: float = 0.5


def with_retries(action: Callable[[], Any], policy: Retry, url: str, what: str) -> Any:
    last = None
    for attempt in range(policy.retries + 1):
        try:
            return action()
        except Transient as exc:
            last = exc
            if attempt < policy.retries:
                time.sleep(policy.backoff * 2 ** attempt)
    raise Unreachable(f"registry {url} did not answer for {what} after {policy.retries + 1} tries ({last}); "
                      "check the URL and the network, then re-run the pull (it resumes where it stopped)")


def read_small(source: Any, rel: str, policy: Retry, limit: int, missing: str) -> bytes:
    """The whole of a small registry file (pointer or manifest); `missing` is the sentence for a 404."""
    def attempt() -> bytes:
        stream, _ = source.open(rel, 0)
        with stream:
            return _read(stream, limit + 1)

    try:
        data = with_retries(attempt, policy, source.url, rel)
    except Missing:
        raise NotFound(missing) from None
    if len(data) > limit:
        raise VerificationError(f"{rel} in registry {source.url} is larger than {limit} bytes; "
                                "check that --registry points to an incop registry")
    return data


def _read(stream: Any, size: int) -> bytes:
    try:
        return stream.read(size)
    except (http.client.HTTPException, OSError) as exc:
        raise Transient(f"read failed: {exc!r}") from None


def _write(out: Any, chunk: bytes, part: Path) -> None:
    try:
        out.write(chunk)
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        reason = "the disk is full" if full else f"writing failed ({exc.strerror or exc})"
        raise DeviceError(f"{reason} while downloading {part}; free space on the device and re-run the pull "
                          "(it resumes where it stopped)") from None


def _attempt(source: Any, rel: str, part: Path, size: int) -> int:
    """One pass: append the rest of `rel` to `part`; return the length of `part` afterwards."""
    offset = part.stat().st_size if part.exists() else 0
    if offset > size:  # a stale partial file from another upload of this name: start over
        part.unlink()
        offset = 0
    if offset == size:
        return offset
    try:
        stream, start = source.open(rel, offset)
    except RangeRefused:
        part.unlink(missing_ok=True)
        raise Transient("the server refused the resume range; starting over") from None
    with stream, open(part, "r+b" if part.exists() else "wb") as out:
        out.seek(start)
        out.truncate()
        written, limit = start, size + 1  # one byte more than the manifest says reveals a longer file
        while written < limit:
            chunk = _read(stream, min(CHUNK, limit - written))
            if not chunk:
                break
            _write(out, chunk, part)
            written += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return written


def fetch(source: Any, rel: str, part: Path, info: dict, policy: Retry) -> None:
    """Download `rel` into `part` (resuming what is there) and verify its size and sha256, or raise."""
    resumed = part.exists() and part.stat().st_size > 0
    for _ in range(2):
        try:
            length = with_retries(lambda: _attempt(source, rel, part, info["size"]), policy, source.url, rel)
        except Missing:
            raise NotFound(f"{rel} is missing from registry {source.url}; the entry is incomplete, so "
                           "republish it") from None
        if length != info["size"]:
            part.unlink(missing_ok=True)
            kind = "truncated" if length < info["size"] else "longer than the manifest says"
            raise VerificationError(f"{rel} is {kind} ({length} bytes, manifest {info['size']}); the registry "
                                    "entry is corrupt, so republish it")
        if sha256_file(part) == info["sha256"]:
            return
        part.unlink(missing_ok=True)
        if not resumed:
            break
        resumed = False  # a stale partial file may be the culprit: download it once more from scratch
    raise VerificationError(f"the sha256 of {rel} does not match its manifest; the file was corrupted or "
                            "tampered with, so republish the entry (the current model is unchanged)")
