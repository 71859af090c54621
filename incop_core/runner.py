"""The IMP runner: fine-tune, reference flows, then prune / rewind / retrain until the criterion stops.

Every stage writes its output atomically and returns it when it is already there, so a re-run
resumes after the last finished iteration and a finished run does nothing.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import magnitude, paths
from .config import RunConfig
from .criteria import CRITERIA, CriterionContext, EpochRecord, Verdict
from .data import Dataset, batches, load_dataset
from .epsilon import auto_epsilon
from .devices import place_dataset, prepare_model, resolve
from .distributed import barrier, main_only, world
from .errors import IncopError
from .fileio import read_json, save_torch_atomic, write_json_atomic
from .flows import gradient_flow, information_flow
from .masks import Mask, prunable_weights
from .models import build_model
from .rundir import clear_partial, finished_iterations, load_records, locked, open_run, read_status, write_status
from .schedules import SCHEDULES, PruneState
from .train import evaluate, train

Events = Callable[[str, dict], None]


def _quiet(kind: str, info: dict) -> None:
    return None


class Pruning:
    """State shared by the stages of one run."""

    def __init__(self, config: RunConfig, run: Path, on_event: Events) -> None:
        self.config, self.run = config, run
        self.emit = on_event if world().is_main else _quiet
        self.device = resolve(config.device)
        self.data: Dataset = place_dataset(load_dataset(config.data, config.seed), self.device)
        torch.manual_seed(config.seed)
        model = build_model(config.model, self.data.input_shape, self.data.num_classes)
        self.model = prepare_model(model, self.device)
        gen = torch.Generator().manual_seed(config.seed + 1)
        index = torch.randperm(len(self.data.train), generator=gen)[: config.prune.probe_size]
        self.probe_split = self.data.train.subset(index.to(self.data.train.labels.device))

    def probe(self):
        return batches(self.probe_split, self.config.prune.probe_batch, self.data, self.device)

    def measure(self, signal: str, model: torch.nn.Module, mask: Mask) -> np.ndarray:
        return information_flow(model, self.probe) if signal == "if" else gradient_flow(model, self.probe, mask)

    def record(self, iteration: int, mask: Mask, epochs: int, stop: str, history: list[dict],
               wall: float, flow_seconds: float, extra: Optional[dict] = None) -> dict:
        return {"iteration": iteration, "remaining": mask.remaining_total(), "total": mask.total(),
                "remaining_fraction": mask.remaining_total() / mask.total(), "remaining_per_layer": mask.remaining(),
                "epochs": epochs, "stop_reason": stop,
                "distances": [{"epoch": h["epoch"], "distance": h["distance"]} for h in history if h["distance"] is not None],
                "history": history, "val_acc": evaluate(self.model, self.data.val, self.data, self.device),
                "test_acc": evaluate(self.model, self.data.test, self.data, self.device),
                "wall_seconds": wall, "flow_seconds": flow_seconds, **(extra or {})}

    def save_iteration(self, iteration: int, mask: Mask, record: dict) -> None:
        """Write weights, mask and record into a temporary folder, then rename it into place (rank 0 only)."""
        if world().is_main:
            self._write_iteration(iteration, mask, record)
        barrier()

    def _write_iteration(self, iteration: int, mask: Mask, record: dict) -> None:
        final = paths.iteration_dir(self.run, iteration)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_torch_atomic(tmp / paths.WEIGHTS, {k: v.detach().cpu() for k, v in self.model.state_dict().items()})
        mask.save(tmp / paths.MASK)
        write_json_atomic(tmp / paths.RECORD, record)
        os.replace(tmp, final)

    def load_iteration(self, iteration: int) -> tuple[dict, Mask]:
        folder = paths.iteration_dir(self.run, iteration)
        try:
            state = torch.load(folder / paths.WEIGHTS, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise IncopError(f"checkpoint {folder / paths.WEIGHTS} is unreadable; delete {folder} to recompute that iteration") from exc
        return state, Mask.load(folder / paths.MASK)

    def finetune(self) -> tuple[dict, Mask]:
        """Iteration 0: dense fine-tuning keeping the best validation epoch; its flows are the reference."""
        if 0 in finished_iterations(self.run):
            return self.load_iteration(0)
        self.emit("stage", {"name": "finetune", "epochs": self.config.finetune_epochs})
        criterion = self.config.prune.criterion
        every_epoch = getattr(criterion, "estimator", None) == "probe" and getattr(criterion, "epsilon", None) == "auto"
        start, mask, recorder = time.perf_counter(), Mask.dense(self.model), FlowRecorder(self.measure, every_epoch)
        result = train(self.model, self.data, mask, self.config.optim, recorder, self.config.finetune_epochs, self.device,
                       self.config.seed, keep_best=True, stream=True,
                       on_epoch=lambda row: self.emit("epoch", {"iteration": 0, **row}))
        self.model.load_state_dict(result.best_state)
        best = 1 + max(range(result.epochs), key=lambda e: (result.history[e]["val_acc"], -e))
        probe_start = time.perf_counter()
        best_flows = recorder.epochs[best - 1] if every_epoch else {
            **recorder.epochs[best - 1], **{s: self.measure(s, self.model, mask) for s in ("if", "gf")}}
        result.flow_seconds += 0.0 if every_epoch else time.perf_counter() - probe_start
        reference = {key: flows.tolist() for key, flows in best_flows.items()}
        auto = {key: auto_epsilon([row[key] for row in recorder.epochs], best) if key in recorder.epochs[0] else None
                for key in reference}
        record = self.record(0, mask, result.epochs, "finetune", result.history, time.perf_counter() - start,
                             result.flow_seconds, {"dense_best_val_acc": result.best_val_acc, "best_epoch": best,
                                                   "reference": reference, "auto_epsilon": auto,
                                                   "finetune_flows": [{k: v.tolist() for k, v in row.items()} for row in recorder.epochs]})
        self.save_iteration(0, mask, record)
        self.emit("iteration", record)
        return self.load_iteration(0)

    def iterate(self, t: int, dense: dict, previous: tuple[dict, Mask], context: CriterionContext) -> tuple[dict, Mask]:
        """Prune the previous iteration's trained weights, rewind to the dense weights, retrain."""
        if t in finished_iterations(self.run):
            return self.load_iteration(t)
        start, prune = time.perf_counter(), self.config.prune
        self.emit("stage", {"name": "iteration", "iteration": t, "max_epochs": prune.max_epochs})
        self.model.load_state_dict(previous[0])
        weights = {n: w.detach() for n, w in prunable_weights(self.model).items()}
        state = PruneState(weights, previous[1], prune.scope, t, self.model, self.probe)
        counts = SCHEDULES.build(prune.schedule).prune_counts(state)
        mask = magnitude.prune(weights, previous[1], counts, prune.scope)
        self.model.load_state_dict(dense)
        mask.apply_(self.model)
        criterion = CRITERIA.build(prune.criterion, context)
        result = train(self.model, self.data, mask, self.config.optim, criterion, prune.max_epochs, self.device,
                       self.config.seed + 1000 * t, stream=getattr(prune.criterion, "estimator", None) == "stream",
                       on_epoch=lambda row: self.emit("epoch", {"iteration": t, **row}))
        record = self.record(t, mask, result.epochs, result.stop_reason, result.history, time.perf_counter() - start,
                             result.flow_seconds, {"pruned": sum(counts.values()), "epsilon": getattr(criterion, "epsilon", None)})
        self.save_iteration(t, mask, record)
        self.emit("iteration", record)
        return self.load_iteration(t)


class FlowRecorder:
    """The fine-tuning 'criterion': never stops, keeps each epoch's streamed flows, and its probe flows
    too when `probe` (only an auto epsilon for the probe estimator needs them every epoch)."""

    def __init__(self, measure: Callable[[str, torch.nn.Module, Mask], np.ndarray], probe: bool) -> None:
        self.measure, self.probe, self.epochs = measure, probe, []

    def check(self, epoch: EpochRecord) -> Verdict:
        start = time.perf_counter()
        row = {signal: self.measure(signal, epoch.model, epoch.mask) for signal in ("if", "gf")} if self.probe else {}
        row.update({f"{signal}-stream": flows for signal, flows in epoch.stream.items()})
        self.epochs.append(row)
        return Verdict(False, flow_seconds=time.perf_counter() - start)


def criterion_context(config: RunConfig, dense: dict, measure) -> CriterionContext:
    """Reference flows and auto epsilons from iteration 0; an undefined auto epsilon falls back to the default."""
    criterion = config.prune.criterion
    default = type(criterion).model_fields["epsilon"].default if "epsilon" in type(criterion).model_fields else None
    auto = {k: (v if v is not None else default) for k, v in dense["auto_epsilon"].items()}
    return CriterionContext(dense["dense_best_val_acc"], {k: np.array(v) for k, v in dense["reference"].items()},
                            measure, auto)


def run_pruning(config: RunConfig, root: Path, run: Optional[Path] = None, on_event: Events = _quiet,
                stop_after: Optional[int] = None) -> Path:
    """Run (or resume) the pruning loop; returns the run directory.

    `stop_after=t` stops once iteration t is finished (0: fine-tuning only) and leaves the run "paused";
    the next call resumes it."""
    run = Path(run) if run else paths.run_dir(root, config.config_hash())
    total = config.prune.iterations
    last = total if stop_after is None else min(stop_after, total)
    finished = read_status(run)["state"] == "finished" or (last + 1 <= len(finished_iterations(run)))
    job = None if finished else Pruning(config, run, on_event)  # device and data errors before any file is written
    if world().is_main:
        open_run(config, root, run)
    barrier()
    status = write_status if world().is_main else (lambda *args: None)
    with main_only(locked(run)):
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
            context = criterion_context(config, read_json(paths.iteration_dir(run, 0) / paths.RECORD), job.measure)
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
