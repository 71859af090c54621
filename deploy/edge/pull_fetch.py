"""Downloads with retries, exponential backoff and resume (HTTP Range), verified against the manifest.

Each file (pointer and manifest included) has a deadline, retries and backoff included, and its transfer rate
over a sliding window must stay above a minimum: a server that drips bytes cannot hold a pull forever.
A too-slow attempt is retried like any transient failure (resuming); the deadline is a hard stop.
"""

from __future__ import annotations

import errno
import http.client
import math
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .errors import DeviceError, NotFound, Unreachable, VerificationError
from .pull_source import Missing, RangeRefused, Transient

CHUNK = 1 << 16
MIN_RATE = 10 * 1024
RESUMES = "re-run the pull (it resumes where it stopped)"


@dataclass(frozen=True)
class Retry:
    """How hard to try: `retries` more attempts after the first, waiting backoff, 2*backoff, ... between.

    Each file must arrive within `deadline` seconds (None: 60 + size / min_rate), and its rate averaged over
    `window` seconds must not drop below `min_rate` bytes/s (0 turns both the rate check and the derived
    deadline off).
    """

    retries: int = 4
    backoff: float = 0.5
    deadline: Optional[float] = None
    min_rate: float = MIN_RATE
    window: float = 10.0


class TooSlow(Transient):
    """An attempt's transfer rate fell below the minimum; retrying (and resuming) may help."""


class Pace:
    """The clock of one file: its deadline across every attempt, and the sliding-window rate of one attempt."""

    def __init__(self, policy: Retry, url: str, rel: str, size: int):
        self.policy, self.url, self.rel, self.started = policy, url, rel, time.monotonic()
        derived = 60 + size / policy.min_rate if policy.min_rate > 0 else math.inf
        self.limit = derived if policy.deadline is None else policy.deadline
        self.until = self.started + self.limit  # the time.monotonic() instant of the deadline
        self.marks: deque = deque()

    def remaining(self) -> float:
        return self.until - time.monotonic()

    def check_deadline(self) -> None:
        if self.remaining() <= 0:
            raise Unreachable(f"registry {self.url} did not deliver {self.rel} within the {self.limit:g} s deadline; "
                              f"check the network, raise --deadline or lower --min-rate, then {RESUMES}")

    def begin(self) -> None:
        self.check_deadline()
        self.marks = deque([(time.monotonic(), 0)])

    def tick(self, count: int) -> None:
        """Count `count` more bytes of this attempt; raise when past the deadline or too slow."""
        self.check_deadline()
        now, window, rate = time.monotonic(), self.policy.window, self.policy.min_rate
        total = self.marks[-1][1] + count
        self.marks.append((now, total))
        while len(self.marks) > 1 and self.marks[1][0] <= now - window:
            self.marks.popleft()
        since, base = self.marks[0]
        if rate > 0 and now - since >= window and (total - base) < rate * (now - since):
            raise TooSlow(f"slower than {rate:g} bytes/s over {window:g} s")


def with_retries(action: Callable[[], Any], policy: Retry, url: str, what: str, pace: Optional[Pace] = None) -> Any:
    last = None
    for attempt in range(policy.retries + 1):
        if pace is not None:
            pace.begin()
        try:
            return action()
        except Transient as exc:
            last = exc
            if pace is not None:
                pace.check_deadline()  # a request cut off at the deadline ends the pull with the deadline's sentence
            if attempt < policy.retries:
                wait = policy.backoff * 2 ** attempt
                time.sleep(max(0.0, min(wait, pace.remaining() if pace else wait)))
    if isinstance(last, TooSlow):
        raise Unreachable(f"registry {url} sent {what} {last}, after {policy.retries + 1} tries; check the "
                          f"network or lower --min-rate, then {RESUMES}")
    raise Unreachable(f"registry {url} did not answer for {what} after {policy.retries + 1} tries ({last}); "
                      f"check the URL and the network, then {RESUMES}")


def _drain(stream: Any, limit: int, pace: Pace, sink: Callable[[bytes], None]) -> int:
    """Read up to `limit` bytes into `sink` a piece at a time (so the pace is checked as bytes drip in)."""
    read = getattr(stream, "read1", stream.read)
    got = 0
    while got < limit:
        chunk = _read(read, min(CHUNK, limit - got))
        if not chunk:
            break
        sink(chunk)
        got += len(chunk)
        pace.tick(len(chunk))
    return got


def read_small(source: Any, rel: str, policy: Retry, limit: int, missing: str) -> bytes:
    """The whole of a small registry file (pointer or manifest); `missing` is the sentence for a 404."""
    pace = Pace(policy, source.url, rel, limit)

    def attempt() -> bytes:
        pieces: list = []
        stream, _ = source.open(rel, 0, pace.until)
        with stream:
            _drain(stream, limit + 1, pace, pieces.append)
        return b"".join(pieces)

    try:
        data = with_retries(attempt, policy, source.url, rel, pace)
    except Missing:
        raise NotFound(missing) from None
    if len(data) > limit:
        raise VerificationError(f"{rel} in registry {source.url} is larger than {limit} bytes; "
                                "check that --registry points to an incop registry")
    return data


def _read(read: Callable[[int], bytes], size: int) -> bytes:
    try:
        return read(size)
    except (http.client.HTTPException, OSError) as exc:
        raise Transient(f"read failed: {exc or type(exc).__name__}") from None


def _write(out: Any, chunk: bytes, part: Any) -> None:
    try:
        out.write(chunk)
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        reason = "the disk is full" if full else f"writing failed ({exc.strerror or exc})"
        raise DeviceError(f"{reason} while downloading {part}; free space on the device and {RESUMES}") from None


def _attempt(source: Any, rel: str, part: Any, size: int, pace: Pace) -> int:
    """One pass: append the rest of `rel` to `part`; return the length of `part` afterwards."""
    offset = part.size() or 0
    if offset > size:  # a stale partial file from another upload of this name: start over
        part.unlink()
        offset = 0
    if offset == size:
        return offset
    try:
        stream, start = source.open(rel, offset, pace.until)
    except RangeRefused:
        part.unlink()
        raise Transient("the server refused the resume range; starting over") from None
    with stream, part.open_for_writing() as out:
        out.seek(start)
        out.truncate()
        # one byte more than the manifest says reveals a longer file
        written = start + _drain(stream, size + 1 - start, pace, lambda chunk: _write(out, chunk, part))
        out.flush()
        os.fsync(out.fileno())
    return written


def fetch(source: Any, rel: str, part: Any, info: dict, policy: Retry) -> None:
    """Download `rel` into `part` (a StagedFile: resuming what is there) and verify its size and sha256, or raise."""
    resumed = (part.size() or 0) > 0
    pace = Pace(policy, source.url, rel, info["size"])
    for _ in range(2):
        try:
            length = with_retries(lambda: _attempt(source, rel, part, info["size"], pace), policy, source.url, rel,
                                  pace)
        except Missing:
            raise NotFound(f"{rel} is missing from registry {source.url}; the entry is incomplete, so "
                           "republish it") from None
        if length != info["size"]:
            part.unlink()
            kind = "truncated" if length < info["size"] else "longer than the manifest says"
            raise VerificationError(f"{rel} is {kind} ({length} bytes, manifest {info['size']}); the registry "
                                    "entry is corrupt, so republish it")
        if part.sha256() == info["sha256"]:
            return
        part.unlink()
        if not resumed:
            break
        resumed = False  # a stale partial file may be the culprit: download it once more from scratch
    raise VerificationError(f"the sha256 of {rel} does not match its manifest; the file was corrupted or "
                            "tampered with, so republish the entry (the current model is unchanged)")
