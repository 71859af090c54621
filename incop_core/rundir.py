"""Run directories: addressed by the config hash, locked while worked on, read back for reports."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from . import paths
from .config import RunConfig
from .errors import ConfigError, RunLocked
from .fileio import read_json, write_json_atomic


def open_run(config: RunConfig, root: Path, run: Optional[Path] = None) -> Path:
    """Create (or reopen) the run directory for `config`; refuse one made by a different config."""
    run = Path(run) if run else paths.run_dir(root, config.config_hash())
    saved = run / paths.CONFIG
    if saved.exists():
        try:
            old = RunConfig.model_validate(read_json(saved))
        except Exception:
            raise ConfigError(f"{saved} is unreadable or from an incompatible version; remove {run} or choose another --run-dir") from None
        if old.config_hash() != config.config_hash():
            raise ConfigError(f"run directory {run} was made by a different config (hash {old.config_hash()}, "
                              f"yours is {config.config_hash()}); choose another --run-dir or remove it")
    elif run.exists() and any(run.iterdir()):
        raise ConfigError(f"{run} is not empty and holds no {paths.CONFIG}; choose an empty or new --run-dir")
    else:
        write_json_atomic(saved, config.model_dump(mode="json"))
    return run


@contextmanager
def locked(run: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run while working on it; a second process is told who holds it."""
    handle = open(run / paths.LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunLocked(f"run {run.name} is being worked on by {holder}; wait for it to finish or stop it") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def write_status(run: Path, state: str, done: int, total: int, error: Optional[str] = None) -> None:
    write_json_atomic(run / paths.STATUS, {"state": state, "iterations_done": done, "iterations_total": total,
                                           "error": error, "updated": time.time()})


def read_status(run: Path) -> dict:
    try:
        return read_json(run / paths.STATUS)
    except (OSError, json.JSONDecodeError):
        return {"state": "new", "iterations_done": 0, "iterations_total": None, "error": None}


def finished_iterations(run: Path) -> list[int]:
    folder = run / paths.ITERATIONS
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / paths.RECORD).exists())


def clear_partial(run: Path) -> None:
    """Remove half-written iteration folders left by a crash."""
    folder = run / paths.ITERATIONS
    for leftover in folder.glob("*.tmp") if folder.is_dir() else []:
        shutil.rmtree(leftover, ignore_errors=True)


def load_records(run: Path) -> list[dict]:
    return [read_json(paths.iteration_dir(run, t) / paths.RECORD) for t in finished_iterations(run)]


def list_runs(root: Path) -> list[dict]:
    """One summary row per run under `root`, newest first."""
    rows = []
    for run in sorted(Path(root).glob("*/" + paths.CONFIG), key=lambda p: p.stat().st_mtime, reverse=True):
        config, status = read_json(run), read_status(run.parent)
        records = load_records(run.parent)
        rows.append({"run": run.parent.name, "model": config["model"]["name"], "data": config["data"]["name"],
                     "schedule": config["prune"]["schedule"]["kind"], "criterion": config["prune"]["criterion"]["kind"],
                     "state": status["state"], "done": f"{len(records) - 1 if records else 0}/{config['prune']['iterations']}",
                     "remaining": records[-1]["remaining_fraction"] if records else None,
                     "test_acc": records[-1]["test_acc"] if records else None})
    return rows
