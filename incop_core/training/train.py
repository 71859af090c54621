"""One plain training function: masked SGD that asks the criterion after each epoch and obeys it."""

from __future__ import annotations

import copy
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from incop_core.training.optim import OptimConfig
from incop_core.criteria import MAX_EPOCHS, Criterion, EpochRecord, Verdict
from incop_core.datasets.splits import Dataset, Split, batch_starts, batches
from incop_core.platforms.devices import autocast
from incop_core.platforms.distributed import all_sum, world, wrap
from incop_core.foundations.errors import DataError, TrainingDiverged
from incop_core.pruning.masks import Mask
from incop_core.training.distill import Distiller
from incop_core.training.masked_sgd import MaskedSGD
from incop_core.consistency.streaming import StreamMonitor


@dataclass
class TrainResult:
    epochs: int = 0
    stop_reason: str = MAX_EPOCHS
    history: list[dict] = field(default_factory=list)  # per epoch: loss, val_acc, distance, seconds
    flow_seconds: float = 0.0
    best_val_acc: float = -1.0
    best_state: Optional[dict] = None


def evaluate(model: nn.Module, split: Split, data: Dataset, device: torch.device, batch_size: int = 512) -> float:
    """Top-1 accuracy on a split, in eval mode."""
    was_training, correct = model.training, 0
    model.eval()
    with torch.no_grad(), autocast(device):
        for images, labels in batches(split, batch_size, data, device):
            correct += int((model(images).argmax(dim=1) == labels).sum())
    model.train(was_training)
    return correct / max(len(split), 1)


def train_epoch(model: nn.Module, data: Dataset, opt: MaskedSGD, batch_size: int, device: torch.device,
                generator: torch.Generator, monitor: Optional[StreamMonitor] = None,
                after_step: Optional[Callable[[Callable[[], float]], bool]] = None,
                teacher: Optional[Distiller] = None) -> float:
    """One pass over the training split; `after_step(mean_loss_so_far)` may end it early by returning True; with a
    `teacher`, the loss is its distillation loss."""
    model.train()
    total, seen = torch.zeros((), device=device), 0
    for images, labels in batches(data.train, batch_size, data, device, generator, sharded=world().active,
                                  training=True):
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            logits = model(images)
            loss = teacher.loss(logits, images, labels) if teacher else F.cross_entropy(logits, labels)
        if monitor is not None:
            monitor.batch_done()
        loss.backward()
        opt.step(monitor)
        total += loss.detach() * len(labels)
        seen += len(labels)
        if after_step is not None and after_step(lambda: float(total) / seen):
            break
    return float(all_sum(total)) / max(float(all_sum(torch.tensor(float(seen), device=device))), 1.0)


@dataclass(frozen=True)
class CheckPlan:
    """When the criterion is asked: before any step (epoch 0), every `every_epochs` epochs, every `every_steps`
    steps."""
    at_start: bool = False
    every_epochs: int = 1
    every_steps: Optional[int] = None


class _Loop:
    """The state of one call of `train`: steps taken, the history, and the last verdict."""

    def __init__(self, model, data, mask, criterion, device, steps_per_epoch, on_epoch, keep_best) -> None:
        self.model, self.data, self.mask, self.criterion, self.device = model, data, mask, criterion, device
        self.steps_per_epoch, self.on_epoch, self.keep_best = steps_per_epoch, on_epoch, keep_best
        self.steps, self.result, self.started = 0, TrainResult(), time.perf_counter()

    @property
    def epochs(self) -> float:
        return self.steps / self.steps_per_epoch

    def ask(self, loss: float, streamed=None) -> bool:
        """Ask the criterion and record the check; True when training must stop. Validation accuracy is measured at
        epoch ends (it is reported); at mid-epoch checks only when the criterion reads it."""
        epoch = self.epochs
        epoch = int(round(epoch)) if abs(epoch - round(epoch)) < 1e-9 else epoch
        seen: dict[str, float] = {}

        def validate() -> float:
            if "val" not in seen:
                seen["val"] = evaluate(self.model, self.data.val, self.data, self.device)
            return seen["val"]

        measured = validate() if float(epoch).is_integer() else None
        verdict: Verdict = self.criterion.check(EpochRecord(epoch, measured, loss, self.model, self.mask, streamed,
                                                            validate))
        result, val_acc = self.result, seen.get("val")
        result.epochs, result.flow_seconds = epoch, result.flow_seconds + verdict.flow_seconds
        if val_acc is not None:
            if self.keep_best and val_acc > result.best_val_acc:
                result.best_state = copy.deepcopy(self.model.state_dict())
            result.best_val_acc = max(result.best_val_acc, val_acc)
        row = {"epoch": epoch, "train_loss": loss if math.isfinite(loss) else None, "val_acc": val_acc,
               "distance": verdict.distance,
               "mask_distance": verdict.mask_distance, "seconds": time.perf_counter() - self.started}
        result.history.append(row)
        if self.on_epoch and val_acc is not None:  # mid-epoch decision checks stay in the history, not in the log
            self.on_epoch(row)
        if verdict.stop:
            result.stop_reason = verdict.reason or MAX_EPOCHS
        return verdict.stop


def steps_per_epoch(data: Dataset, batch_size: int) -> int:
    """Training batches per epoch on one process (a lone last image joins the batch before it, see `batches`)."""
    return max(1, len(batch_starts(math.ceil(len(data.train) / world().size), batch_size, training=True)))


def check_trainable(model: nn.Module, data: Dataset) -> None:
    """Refuse what would hang or diverge whatever the learning rate: a training split with no image for some process,
    weights that are NaN or infinite before the first step (a broken weights file or checkpoint)."""
    if len(data.train) < world().size:
        raise DataError(f"the training split holds {len(data.train)} images, too few for {world().size} training "
                        "process(es) to get one each; lower data.val_fraction or raise --train-subset")
    broken = [name for name, t in model.state_dict().items()
              if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if broken:
        raise TrainingDiverged(f"the network's weights hold NaN or infinite values before training ({broken[0]}), so "
                               "the learning rate is not the cause; check model.weights, or delete the run directory "
                               "to recompute it")


def train(model: nn.Module, data: Dataset, mask: Mask, optim: OptimConfig, criterion: Criterion, max_epochs: float,
          device: torch.device, seed: int, keep_best: bool = False, stream: bool = False,
          on_epoch: Optional[Callable[[dict], None]] = None, plan: CheckPlan = CheckPlan(),
          norms: bool = False, teacher: Optional[Distiller] = None) -> TrainResult:
    """Train until the criterion says stop or `max_epochs` (may be fractional) pass; raises TrainingDiverged on a
    NaN/inf loss. The criterion is asked as `plan` says; with `stream`, epoch-end records carry streamed IF/GF; `norms`
    keeps the BatchNorms of whole pruned filters at zero (see MaskedSGD); a `teacher` distils into the model (its loss
    is the reported training loss)."""
    check_trainable(model, data)
    torch.manual_seed(seed)
    opt = MaskedSGD(model, mask, optim, norms)
    monitor = StreamMonitor(model) if stream else None
    trained, batch_size = wrap(model, device), max(1, optim.batch_size // world().size)  # same global batch
    loop = _Loop(model, data, mask, criterion, device, steps_per_epoch(data, batch_size), on_epoch, keep_best)
    budget = max(1, round(max_epochs * loop.steps_per_epoch)) if max_epochs > 0 else 0
    if (plan.at_start and loop.ask(float("nan"))) or budget == 0:
        return loop.result
    stop, epoch = False, 0
    while not stop and loop.steps < budget:
        epoch += 1
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        for group in opt.opt.param_groups:
            group["lr"] = optim.lr_at(epoch, math.ceil(max_epochs))

        def after_step(loss: Callable[[], float]) -> bool:
            nonlocal stop
            loop.steps += 1
            due = (plan.every_steps and loop.steps % plan.every_steps == 0 and loop.steps % loop.steps_per_epoch
                   and loop.steps < budget)  # epoch ends and the budget's last step are checked below
            stop = bool(due) and loop.ask(loss())
            return stop or loop.steps >= budget

        before = loop.steps
        with monitor.watching() if monitor else nullcontext():
            loss = train_epoch(trained, data, opt, batch_size, device, generator, monitor, after_step, teacher)
        if loop.steps == before:  # the watchdog: an epoch without a step would loop forever
            raise DataError(f"epoch {epoch} trained on no batch (this process's share of the {len(data.train)} "
                            "training images is empty); lower data.val_fraction or raise --train-subset")
        if not math.isfinite(loss):
            raise TrainingDiverged(f"training loss became {loss} in epoch {epoch}; lower the learning rate "
                                   "(--set optim.lr=...) and re-run: finished iterations are kept")
        streamed = monitor.end_epoch() if monitor else None
        if not stop and (epoch % plan.every_epochs == 0 or loop.steps >= budget):
            stop = loop.ask(loss, streamed)
    loop.result.flow_seconds += monitor.seconds if monitor else 0.0
    return loop.result
