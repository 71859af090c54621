"""Run directories: addressed by the config hash, their status, read back for reports (imp/runlock.py locks one while
it is worked on)."""

from __future__ import annotations

import fcntl
import glob
import os
import re
import shutil
import time
from pathlib import Path
from typing import Optional

from incop_core.imp import paths
from incop_core.imp.config import RunConfig
from incop_core.foundations.errors import ConfigError, IncopError
from incop_core.foundations.fileio import read_json, write_json_atomic

LEFTOVER_TMP = re.compile(r"^\.(%s)\..+\.tmp$" % "|".join(re.escape(n)
                                                          for n in (paths.CONFIG, paths.STATUS, paths.RECORDS)))
CRASHED = "crashed (the process stopped without finishing); re-run the same command to resume"
STALE_TMP_SECONDS = 60
RECORD_NUMBERS = ("iteration", "remaining_fraction", "epochs", "val_acc", "test_acc", "wall_seconds", "flow_seconds")


def open_run(config: RunConfig, root: Path, run: Optional[Path] = None) -> Path:
    """Create (or reopen) the run directory for `config`; refuse one made by a different config."""
    run = Path(run) if run else paths.run_dir(root, config.config_hash())
    saved = run / paths.CONFIG
    if saved.exists():
        try:
            old = RunConfig.model_validate(read_json(saved))
        except Exception:
            raise ConfigError(f"{saved} is unreadable or from an incompatible version; remove {run} or choose another "
                              "--run-dir") from None
        if old.config_hash() != config.config_hash():
            raise ConfigError(f"run directory {run} was made by a different config (hash {old.config_hash()}, "
                              f"yours is {config.config_hash()}); choose another --run-dir or remove it")
    elif run.exists() and any(not _own_leftover(p.name) for p in run.iterdir()):
        raise ConfigError(f"{run} is not empty and holds no {paths.CONFIG}; choose an empty or new --run-dir")
    else:  # new, or holding only what a crash while writing the first config.json leaves: reuse it
        write_json_atomic(saved, config.model_dump(mode="json"))
    return run


def _own_leftover(name: str) -> bool:
    """The lock, the status, or a temporary file of an atomic write of a run's own JSON files."""
    return name in (paths.LOCK, paths.STATUS) or bool(LEFTOVER_TMP.match(name))


def write_status(run: Path, state: str, done: int, total: int, error: Optional[str] = None) -> None:
    write_json_atomic(run / paths.STATUS, {"state": state, "iterations_done": done, "iterations_total": total,
                                           "error": error, "updated": time.time()})


def read_status(run: Path) -> dict:
    """The status as last written (see check_status for the state of a run that may have crashed)."""
    try:
        status = read_json(run / paths.STATUS)
    except (OSError, ValueError):
        status = None
    if not isinstance(status, dict) or "state" not in status:
        return {"state": "new", "iterations_done": 0, "iterations_total": None, "error": None}
    return status


def check_status(run: Path) -> dict:
    """The status, with a "running" run whose lock no live process holds turned "failed" (crashed); the
    correction is written back while holding the lock, so a run that really is running is never touched."""
    status = read_status(run)
    if status["state"] != "running" or not (run / paths.LOCK).is_file():
        return status
    with open(run / paths.LOCK, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return status  # alive
        status = read_status(run)  # re-read under the lock: it may have just finished
        if status["state"] == "running":
            status = {**status, "state": "failed", "error": CRASHED, "updated": time.time()}
            try:
                write_json_atomic(run / paths.STATUS, status)
            except OSError:
                pass  # a read-only run still reports the crash
    return status


def finished_iterations(run: Path) -> list[int]:
    folder = run / paths.ITERATIONS
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / paths.RECORD).exists())


def clear_partial(run: Path) -> None:
    """Remove half-written iteration folders left by a crash, and stale temporary files of the run's JSON files
    (a minute old: a writer that has not locked the run yet may be using a fresh one)."""
    folder = run / paths.ITERATIONS
    for leftover in folder.glob("*.tmp") if folder.is_dir() else []:
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in (p for p in run.glob(".*.tmp") if LEFTOVER_TMP.match(p.name)):
        if time.time() - leftover.stat().st_mtime > STALE_TMP_SECONDS:
            leftover.unlink(missing_ok=True)


def read_record(run: Path, iteration: int) -> dict:
    """One finished iteration's record; a damaged one is a sentence naming the folder to delete."""
    folder = paths.iteration_dir(run, iteration)
    return read_record_at(folder, f"delete {folder} and re-run `incop prune` with the same settings to recompute that "
                                  "iteration")


def read_record_at(folder: Path, fix: str) -> dict:
    """The record in `folder`; a damaged one is a sentence ending in `fix`."""
    try:
        record = read_json(Path(folder) / paths.RECORD)
    except ValueError:
        raise IncopError(f"iteration record {Path(folder) / paths.RECORD} is corrupt (not valid JSON); {fix}") from None
    whole = isinstance(record, dict) and all(isinstance(record.get(k), (int, float)) for k in RECORD_NUMBERS)
    if (not whole or not isinstance(record.get("remaining_per_layer"), dict)
            or not isinstance(record.get("stop_reason"), str)):
        raise IncopError(f"iteration record {Path(folder) / paths.RECORD} is incomplete or damaged; {fix}")
    return record


def load_records(run: Path) -> list[dict]:
    return [read_record(run, t) for t in finished_iterations(run)]


def find_run(run: str, runs_dir: Path) -> Optional[Path]:
    """A run given as a directory, a hash, or a unique hash prefix under `runs_dir`; None when there is none."""
    for candidate in (Path(run), Path(runs_dir) / run):
        if (candidate / paths.CONFIG).is_file():
            return candidate
    if Path(run).is_absolute() or os.sep in run or not Path(runs_dir).is_dir():
        return None  # a path that is no run (glob takes relative patterns only)
    found = [p for p in Path(runs_dir).glob(f"{glob.escape(run)}*") if (p / paths.CONFIG).is_file()]
    return found[0] if len(found) == 1 else None


def resolve_run(run: str, runs_dir: Path) -> Path:
    found = find_run(run, runs_dir)
    if found is not None:
        return found
    if Path(run).exists():
        raise ConfigError(f"{run} is not a run directory (no {paths.CONFIG}); pass a directory made by `incop prune`")
    raise ConfigError(f"no run {run!r} under {runs_dir}; list runs with `incop runs` or pass the run directory")


def list_runs(root: Path) -> list[dict]:
    """One summary row per run under `root`, newest first; a damaged run gets state "damaged" and a `problem`."""
    configs = sorted(Path(root).glob("*/" + paths.CONFIG), key=lambda p: p.stat().st_mtime, reverse=True)
    return [_summary(config.parent) for config in configs]


def _summary(run: Path) -> dict:
    try:
        config = RunConfig.model_validate(read_json(run / paths.CONFIG))
        records = load_records(run)
    except (IncopError, ValueError) as exc:
        problem = str(exc) if isinstance(exc, IncopError) and "iteration record" in str(exc) else (
            f"{run / paths.CONFIG} is corrupt or from an incompatible version; remove {run} or restore the file")
        return {"run": run.name, "model": "?", "data": "?", "schedule": "?", "criterion": "?", "state": "damaged",
                "done": "", "remaining": None, "test_acc": None, "problem": problem}
    return {"run": run.name, "model": config.model.name, "data": config.data.name,
            "schedule": config.prune.schedule.kind, "criterion": config.prune.criterion.kind,
            "state": check_status(run)["state"],
            "done": f"{len(records) - 1 if records else 0}/{config.prune.iterations}",
            "remaining": records[-1]["remaining_fraction"] if records else None,
            "test_acc": records[-1]["test_acc"] if records else None}
