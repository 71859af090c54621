"""The IMP runner: open (or resume) a run directory, chain its stages (imp/stages.py) under the run's lock, keep its
status; a finished run does nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from incop_core.consistency.distances import DISTANCES, Snapshot
from incop_core.foundations.fileio import write_json_atomic
from incop_core.imp import paths
from incop_core.imp.checkpoint import run_dense_record
from incop_core.imp.config import RunConfig
from incop_core.imp.plan import criterion_context
from incop_core.imp.rundir import clear_partial, finished_iterations, load_records, open_run, read_status, write_status
from incop_core.imp.runlock import locked
from incop_core.imp.stages import Events, Pruning, quiet
from incop_core.platforms.distributed import barrier, main_only, world
from incop_core.pruning.masks import Mask


def reference_snapshot(job: "Pruning", dense: dict) -> Optional[Snapshot]:
    """The dense network's probe snapshot, with what the criterion's distance needs (None for other criteria)."""
    distance = job.config.prune.criterion.reference_distance()
    if distance is None:
        return None
    job.model.load_state_dict(dense)
    return job.snapshot(job.model, Mask.dense(job.model), DISTANCES.get(distance).needs)


def run_pruning(config: RunConfig, root: Path, run: Optional[Path] = None, on_event: Events = quiet,
                stop_after: Optional[int] = None, lock_wait: float = 0.0) -> Path:
    """Run (or resume) the pruning loop; returns the run directory.

    `stop_after=t` stops once iteration t is finished (0: fine-tuning only) and leaves the run "paused";
    the next call resumes it. A run another process is working on is waited for up to `lock_wait` seconds
    (pipelines pass runlock.LOCK_WAIT_SECONDS), then reused; 0 (the CLI) refuses it at once with RunLocked."""
    run = Path(run) if run else paths.run_dir(root, config.config_hash())
    total = config.prune.iterations
    last = total if stop_after is None else min(stop_after, total)
    finished = read_status(run)["state"] == "finished" or (last + 1 <= len(finished_iterations(run)))
    job = None if finished else Pruning(config, run, on_event)  # device and data errors before any file is written
    if world().is_main:
        open_run(config, root, run)
    barrier()
    status = write_status if world().is_main else (lambda *args: None)
    with main_only(locked(run, lock_wait)):
        if len(finished_iterations(run)) >= last + 1:
            on_event("finished", {"run": str(run), "resumed": True})
            return run
        if world().is_main:
            clear_partial(run)
        status(run, "running", max(len(finished_iterations(run)) - 1, 0), total)
        try:
            job = job or Pruning(config, run, on_event)
            previous = job.finetune()
            dense = previous[0]
            context = criterion_context(config, run_dense_record(run), job.measure, job.snapshot,
                                        reference_snapshot(job, dense))
            for t in range(1, last + 1):
                previous = job.iterate(t, dense, previous, context)
                status(run, "running", t, total)
        except BaseException as exc:
            status(run, "failed", max(len(finished_iterations(run)) - 1, 0), total, str(exc) or type(exc).__name__)
            raise
        if world().is_main:
            write_json_atomic(run / paths.RECORDS, load_records(run))
        status(run, "finished" if last == total else "paused", last, total)
    on_event("finished", {"run": str(run), "resumed": False})
    return run
