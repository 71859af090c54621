"""The stages of one IMP run: fine-tuning (iteration 0, the reference flows and noise) and iteration t (prune,
rewind, retrain until the criterion stops). Each stage writes its output atomically and returns it when it is already
there, so a re-run resumes after the last finished iteration (imp/runner.py chains them)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from incop_core.imp import paths
from incop_core.pruning import magnitude
from incop_core.imp.checkpoint import cache_fix, dense_record, iteration_fix, load_checkpoint, save_checkpoint
from incop_core.imp.config import RunConfig
from incop_core.criteria import CRITERIA, CriterionContext
from incop_core.datasets.data import load_dataset
from incop_core.datasets.splits import Dataset, batches
from incop_core.datasets.placement import place_dataset
from incop_core.platforms.devices import prepare_model, resolve
from incop_core.platforms.distributed import barrier, world
from incop_core.foundations.errors import IncopError
from incop_core.consistency.distances import Snapshot
from incop_core.foundations.fileio import copy_folder_atomic
from incop_core.pruning.groups import channel_groups
from incop_core.pruning.widths import auto_widths
from incop_core.training.finetune import ALL_NEEDS, PLATEAU, FinetuneRecorder
from incop_core.consistency.signals import gradient_flow, information_flow
from incop_core.pruning.masks import Mask, prunable_weights
from incop_core.imp.next_decision import NextDecision
from incop_core.imp.noise import NOISE_AT, DenseNoise
from incop_core.imp.plan import check_plan, dense_key, probe_flows_every_epoch, retrain_epochs
from incop_core.models.zoo import build_model
from incop_core.imp.records import chance_warnings
from incop_core.imp.rundir import finished_iterations
from incop_core.consistency.snapshot import take_snapshot
from incop_core.training.distill import distiller
from incop_core.training.train import evaluate, steps_per_epoch, train
from incop_core.imp.trajectory import group_survivors

Events = Callable[[str, dict], None]


def quiet(kind: str, info: dict) -> None:
    return None


class Pruning(NextDecision, DenseNoise):
    """State shared by the stages of one run."""

    def __init__(self, config: RunConfig, run: Path, on_event: Events) -> None:
        self.config, self.run = config, run
        self.emit = on_event if world().is_main else quiet
        self.device = resolve(config.device)
        self.data: Dataset = place_dataset(load_dataset(config.data, config.seed), self.device)
        torch.manual_seed(config.seed)
        model = build_model(config.model, self.data.input_shape, self.data.num_classes)
        example = torch.zeros((2, *self.data.input_shape))
        # traced once, on the CPU
        self.groups = channel_groups(model, example) if config.prune.scope == "group" else None
        self.widths = (auto_widths(model, example, self.groups, Path(run).parent / paths.WIDTHS_CACHE)
                       if config.prune.round_to == "auto" else None)
        self.model = prepare_model(model, self.device)
        self.probe_split = self.data.train.probe(config.seed, config.prune.probe_size)
        self._settle: Optional[tuple[dict, dict]] = None
        self._settle_moved: Optional[dict] = None

    def probe(self):
        return batches(self.probe_split, self.config.prune.probe_batch, self.data, self.device)

    def measure(self, signal: str, model: torch.nn.Module, mask: Mask) -> np.ndarray:
        return information_flow(model, self.probe) if signal == "if" else gradient_flow(model, self.probe, mask)

    def record(self, iteration: int, mask: Mask, epochs: int, stop: str, history: list[dict],
               wall: float, flow_seconds: float, extra: Optional[dict] = None) -> dict:
        record = {"iteration": iteration, "remaining": mask.remaining_total(), "total": mask.total(),
                  "remaining_fraction": mask.remaining_total() / mask.total(), "remaining_per_layer": mask.remaining(),
                  "epochs": epochs, "stop_reason": stop,
                  "distances": [{"epoch": h["epoch"], "distance": h["distance"]} for h in history
                                if h.get("distance") is not None],
                  "mask_distances": [{"epoch": h["epoch"], "mask_distance": h["mask_distance"]} for h in history
                                     if h.get("mask_distance") is not None],
                  "history": history, "val_acc": evaluate(self.model, self.data.val, self.data, self.device),
                  "test_acc": evaluate(self.model, self.data.test, self.data, self.device),
                  "wall_seconds": wall, "flow_seconds": flow_seconds, **(extra or {})}
        return {**record, "warnings": chance_warnings(record, self.data.num_classes)}

    def save_iteration(self, iteration: int, mask: Mask, record: dict, extra: Optional[dict] = None) -> None:
        """Write weights, mask, record (and `extra` tensors by file name) into a temporary folder, then rename it into
        place (rank 0 only)."""
        if world().is_main:
            save_checkpoint(paths.iteration_dir(self.run, iteration), self.model.state_dict(), mask, record,
                            extra or {})
        barrier()

    def load_iteration(self, iteration: int) -> tuple[dict, Mask]:
        folder = paths.iteration_dir(self.run, iteration)
        return load_checkpoint(folder, self.model, iteration_fix(folder))

    def snapshot(self, model: torch.nn.Module, mask: Mask, needs: frozenset) -> Snapshot:
        return take_snapshot(model, self.probe, mask, needs)

    def finetune(self) -> tuple[dict, Mask]:
        """Iteration 0: dense fine-tuning keeping the best validation epoch; its flows are the reference."""
        if 0 in finished_iterations(self.run) or self._from_dense_cache():
            return self.load_iteration(0)
        self.emit("stage", {"name": "finetune", "epochs": self.config.finetune_epochs})
        start, mask = time.perf_counter(), Mask.dense(self.model)
        recorder = FinetuneRecorder(self.snapshot, self.config.finetune_plateau_pp,
                                    probe_flows_every_epoch(self.config))
        result = train(self.model, self.data, mask, self.config.optim, recorder, self.config.finetune_epochs,
                       self.device, self.config.seed, keep_best=True, stream=True,
                       on_epoch=lambda row: self.emit("epoch", {"iteration": 0, **row}))
        self.model.load_state_dict(result.best_state)
        best = 1 + max(range(len(result.history)), key=lambda e: (result.history[e]["val_acc"] or -1.0, -e))
        flow_start = time.perf_counter()
        reference = self.snapshot(self.model, mask, ALL_NEEDS)
        noise = self.measure_noise(mask, result.best_val_acc)
        record = self.record(0, mask, result.epochs,
                             result.stop_reason if result.stop_reason == PLATEAU else "finetune",
                             result.history, time.perf_counter() - start,
                             result.flow_seconds + time.perf_counter() - flow_start,
                             {"dense_best_val_acc": result.best_val_acc, "best_epoch": best,
                              **recorder.summary(best, reference), "noise": noise,
                              NOISE_AT: self.noise_settings()})
        self.save_iteration(0, mask, record, {paths.SETTLE: self._settle_moved} if self._settle_moved else None)
        if world().is_main:
            copy_folder_atomic(paths.iteration_dir(self.run, 0), paths.dense_cache(self.run, dense_key(self.config)))
        self.emit("iteration", record)
        return self.load_iteration(0)

    def _from_dense_cache(self) -> bool:
        """Reuse the fine-tuning of another run with the same data, model, optimiser, seed and probe."""
        cached = paths.dense_cache(self.run, dense_key(self.config))
        if not (cached / paths.RECORD).is_file():
            return False
        state, mask = load_checkpoint(cached, self.model, cache_fix(cached))  # a damaged cache is named, not its copy
        record = dense_record(cached, cache_fix(cached))
        if record.get(NOISE_AT) == self.noise_settings():
            if world().is_main:
                copy_folder_atomic(cached, paths.iteration_dir(self.run, 0))
            barrier()
        else:  # calibrated at another retraining rate: the same fine-tuning, its noise measured again
            self.emit("stage", {"name": "noise", "epochs": 1})
            self.model.load_state_dict(state)
            self.save_iteration(0, mask, self.renoised(record, mask), {paths.SETTLE: self._settle_moved})
        self.emit("stage", {"name": "finetune", "epochs": 0, "cached": str(cached)})
        return True

    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.data, max(1, self.config.optim.batch_size // world().size))

    def iterate(self, t: int, dense: dict, previous: tuple[dict, Mask], context: CriterionContext) -> tuple[dict, Mask]:
        """Prune the previous iteration's trained weights, rewind (fine-tuned or previous weights), retrain."""
        if t in finished_iterations(self.run):
            return self.load_iteration(t)
        start, prune = time.perf_counter(), self.config.prune
        self.emit("stage", {"name": "iteration", "iteration": t,
                            "max_epochs": retrain_epochs(self.config, t == prune.iterations)})
        self.model.load_state_dict(previous[0])
        weights = {n: w.detach() for n, w in prunable_weights(self.model).items()}
        counts = self.prune_counts(t, weights, previous[1])
        mask = magnitude.prune(weights, previous[1], counts, prune.scope, self.groups)
        if prune.follow is not None and group_survivors(mask, prune.scope) != prune.follow[t - 1]:
            raise IncopError(f"iteration {t} could not reach the followed sparsity {prune.follow[t - 1]} in "
                             f"{prune.scope} scope (a layer keeps at least one filter, neuron rows prune whole "
                             "shares); follow a run of the same scope")
        teacher = distiller(self.model, dense, self.config.optim)
        self.model.load_state_dict(dense if prune.rewind == "finetuned" else previous[0])
        structured = prune.scope in magnitude.STRUCTURED
        mask.apply_(self.model, norms=structured)
        final = t == prune.iterations
        here, calibration = self.iteration_context(context, t, mask, final)
        criterion = CRITERIA.build(prune.criterion, here)
        result = train(self.model, self.data, mask, self.config.optim.retraining(), criterion,
                       retrain_epochs(self.config, final),
                       self.device, self.config.seed + 1000 * t,
                       stream=prune.criterion.streams_flows(),
                       on_epoch=lambda row: self.emit("epoch", {"iteration": t, **row}),
                       plan=check_plan(prune.criterion, final, self.steps_per_epoch()),
                       norms=structured, teacher=teacher)
        record = self.record(t, mask, result.epochs, result.stop_reason, result.history, time.perf_counter() - start,
                             result.flow_seconds + calibration,
                             {"pruned": sum(counts.values()), "epsilon": criterion.epsilon,
                              "rewind": prune.rewind, "final": final, "decision_noise": here.decision_noise})
        self.save_iteration(t, mask, record)
        self.emit("iteration", record)
        return self.load_iteration(t)
