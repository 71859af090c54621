"""The discrimination ladder (docs/algorithms.md §4.6): checkpoints of one model at known accuracy gaps, each measured
against the dense network at its best validation epoch by every consistency-signal plug-in.

Ladder: the dense network at each epoch of its (cosine) fine-tuning; the best dense network one-shot
pruned (global magnitude) at 20/50/80/90/95/99 %, measured after 0, 1, 2 and 5 masked retraining
epochs at the retraining learning rate; and the dense network's random initialisation. Training
follows the product's recipe (`OptimConfig.lr_at`, `OptimConfig.retraining`), and the noise of each
signal is the product's: how far one retraining epoch moves the unpruned dense network.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from incop_core.training.optim import OptimConfig
from incop_core.datasets.splits import Dataset, batches
from incop_core.experiments.discrimination_scores import SignalScore, score_signal
from incop_core.consistency.distances import DISTANCES, Snapshot
from incop_core.training.finetune import ALL_NEEDS, PLATEAU_PP, calibrate, reached_plateau
from incop_core.pruning.magnitude import ALL, prune
from incop_core.pruning.masks import Mask, prunable_weights
from incop_core.models.zoo import ModelConfig, build_model
from incop_core.consistency.snapshot import take_snapshot
from incop_core.training.masked_sgd import MaskedSGD
from incop_core.training.train import evaluate, train_epoch

EXTREMES = ("random", "pruned-99-r0")  # must sit beyond every recovered checkpoint
Note = Callable[[str], None]


@dataclass(frozen=True)
class LadderConfig:
    dense_epochs: int = 15  # cosine fine-tuning length
    ratios: tuple[float, ...] = (0.2, 0.5, 0.8, 0.9, 0.95, 0.99)
    retrain_epochs: tuple[int, ...] = (0, 1, 2, 5)
    probe_size: int = 1024
    probe_batch: int = 256
    optim: OptimConfig = field(default_factory=OptimConfig)
    signals: tuple[str, ...] = ()  # empty: every registered distance
    seed: int = 0


@dataclass(frozen=True)
class Measured:
    name: str
    kind: str
    epochs: int
    sparsity: float
    val_acc: float
    snapshot: Snapshot


@dataclass
class Ladder:
    reference_acc: float
    best_epoch: int
    dense_val: list[float]
    noise: dict[str, float]
    plateau: bool
    rows: list[dict]  # per checkpoint: name, kind, epochs, sparsity, val_acc, gap, distances, noise_ratios

    def scores(self) -> dict[str, SignalScore]:
        return {name: score_signal(self.rows, name, noise, EXTREMES) for name, noise in self.noise.items()}


def _generator(seed: int, stream: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + stream * 1_000 + epoch)


def _probe(data: Dataset, cfg: LadderConfig, device: torch.device):
    index = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(cfg.seed + 17))[: cfg.probe_size]
    split = data.train.subset(index)
    return lambda: batches(split, cfg.probe_batch, data, device)


class _Measure:
    """Validation accuracy and one probe snapshot serving every chosen signal."""

    def __init__(self, data: Dataset, cfg: LadderConfig, device: torch.device, names: list[str]) -> None:
        self.data, self.device, self.probe = data, device, _probe(data, cfg, device)
        self.needs = set().union(*(DISTANCES.get(n).needs for n in names))

    def __call__(self, name: str, kind: str, epochs: int, model: nn.Module, mask: Mask) -> Measured:
        sparsity = 1.0 - mask.remaining_total() / max(mask.total(), 1)
        acc = evaluate(model, self.data.val, self.data, self.device)
        return Measured(name, kind, epochs, sparsity, acc, take_snapshot(model, self.probe, mask, self.needs))


def _train_dense(model: nn.Module, cfg: LadderConfig, measure: _Measure, note: Note) -> tuple[list[Measured], dict]:
    """Fine-tune with the product's cosine schedule; one measurement per epoch and the best epoch's weights."""
    mask, dense, best_state = Mask.dense(model), [], None
    opt = MaskedSGD(model, mask, cfg.optim)
    for epoch in range(1, cfg.dense_epochs + 1):
        for group in opt.opt.param_groups:
            group["lr"] = cfg.optim.lr_at(epoch, cfg.dense_epochs)
        train_epoch(model, measure.data, opt, cfg.optim.batch_size, measure.device, _generator(cfg.seed, 0, epoch))
        dense.append(measure(f"dense-e{epoch}", "dense", epoch, model, mask))
        if dense[-1].val_acc > max((m.val_acc for m in dense[:-1]), default=-1.0):
            best_state = copy.deepcopy(model.state_dict())
        note(f"dense epoch {epoch}: val {dense[-1].val_acc:.4f}")
    return dense, best_state


def _pruned(reference: nn.Module, ratio: float, k: int, cfg: LadderConfig, measure: _Measure,
            note: Note) -> list[Measured]:
    """One-shot global magnitude pruning of the reference, measured after each of `retrain_epochs` masked epochs."""
    model = copy.deepcopy(reference)
    dense = Mask.dense(model)
    mask = prune(prunable_weights(model), dense, {ALL: round(ratio * dense.total())}, "global")
    mask.apply_(model)
    opt, out, pct = MaskedSGD(model, mask, cfg.optim.retraining()), [], f"{100 * ratio:g}"
    for epoch in range(max(cfg.retrain_epochs) + 1):
        if epoch:
            train_epoch(model, measure.data, opt, cfg.optim.batch_size, measure.device,
                        _generator(cfg.seed, k + 1, epoch))
        if epoch in cfg.retrain_epochs:
            out.append(measure(f"pruned-{pct}-r{epoch}", "pruned", epoch, model, mask))
    note(f"pruned {pct} %: val " + " ".join(f"{m.val_acc:.4f}" for m in out))
    return out


def _noise(reference: nn.Module, cfg: LadderConfig, measure: _Measure, names: list[str]) -> dict[str, float]:
    """The product's noise (`finetune.calibrate`): how far one retraining epoch moves the unpruned dense network."""
    mask = Mask.dense(reference)
    snapshot = lambda model, keep, needs: take_snapshot(model, measure.probe, keep, needs)  # noqa: E731
    opt = MaskedSGD(reference, mask, cfg.optim.retraining())

    def retrain() -> float:
        train_epoch(reference, measure.data, opt, cfg.optim.batch_size, measure.device, _generator(cfg.seed, 99, 1))
        return evaluate(reference, measure.data.val, measure.data, measure.device)

    noise = calibrate(reference, snapshot(reference, mask, ALL_NEEDS), retrain, snapshot, mask, 0.0)
    return {n: noise[n] for n in names}


def _row(m: Measured, reference: Measured, noise: dict[str, float]) -> dict:
    distances = {n: DISTANCES.get(n)(m.snapshot, reference.snapshot) for n in noise}
    ratios = {n: d / noise[n] if noise[n] > 0 else float("inf") for n, d in distances.items()}
    return {"name": m.name, "kind": m.kind, "epochs": m.epochs, "sparsity": m.sparsity, "val_acc": m.val_acc,
            "gap": reference.val_acc - m.val_acc, "distances": distances, "noise_ratios": ratios}


def run_ladder(model_cfg: ModelConfig, data: Dataset, cfg: LadderConfig, device: torch.device,
               note: Optional[Note] = None) -> Ladder:
    """Train a model seeded by `cfg.seed` to its plateau, build the ladder and measure every checkpoint."""
    note = note or (lambda _msg: None)
    names = list(cfg.signals) or DISTANCES.names()
    measure = _Measure(data, cfg, device, names)
    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg, data.input_shape, data.num_classes).to(device)
    init = copy.deepcopy(model)
    dense, best_state = _train_dense(model, cfg, measure, note)
    best = int(np.argmax([m.val_acc for m in dense])) + 1
    model.load_state_dict(best_state)
    measured = [m for m in dense if m.epochs != best]
    for k, ratio in enumerate(cfg.ratios):
        measured += _pruned(model, ratio, k, cfg, measure, note)
    measured.append(measure("random", "random", 0, init, Mask.dense(init)))
    noise = _noise(model, cfg, measure, names)
    rows = [_row(m, dense[best - 1], noise) for m in measured]
    val = [m.val_acc for m in dense]
    return Ladder(dense[best - 1].val_acc, best, val, noise, reached_plateau(val, PLATEAU_PP), rows)
