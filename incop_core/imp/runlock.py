"""One process at a time per run directory: an exclusive file lock naming its holder, waited for or refused with one
sentence (a second pipeline of the same config waits, then reuses the first one's stages)."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from incop_core.foundations.errors import RunLocked
from incop_core.imp import paths

LOCK_WAIT_SECONDS = 6 * 3600  # how long a pipeline waits for another process working on the same run
LOCK_POLL_SECONDS = 5.0


@contextmanager
def locked(run: Path, wait: float = 0.0, poll: float = LOCK_POLL_SECONDS,
           notify: Callable[[str], None] = print) -> Iterator[None]:
    """Hold an exclusive lock on the run while working on it. A run another process holds is waited for up to
    `wait` seconds (polling, with one line through `notify`), then refused with RunLocked naming the holder."""
    handle = open(run / paths.LOCK, "a+")
    try:
        _acquire(handle, run, wait, poll, notify)
    except BaseException:
        handle.close()
        raise
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _acquire(handle, run: Path, wait: float, poll: float, notify: Callable[[str], None]) -> None:
    deadline, told = time.monotonic() + wait, False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
        if time.monotonic() >= deadline:
            waited = f" (waited {wait:.0f} s)" if wait > 0 else ""
            raise RunLocked(f"run {run.name} is being worked on by {holder}{waited}; wait for it to finish or stop it, "
                            f"then start again: its finished stages are reused") from None
        if not told:
            notify(f"waiting for run {run.name} held by {holder} (up to {wait:.0f} s); its finished stages will be "
                   "reused")
            told = True
        time.sleep(max(min(poll, deadline - time.monotonic()), 0.01))
