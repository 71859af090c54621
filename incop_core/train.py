"""One plain training function: masked SGD that asks the criterion after each epoch and obeys it."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .config import OptimConfig
from .criteria import MAX_EPOCHS, Criterion, EpochRecord, Verdict
from .data import Dataset, Split, batches
from .devices import autocast
from .distributed import all_sum, world, wrap
from .errors import TrainingDiverged
from .masks import Mask, prunable_weights
from .streaming import StreamMonitor


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


class MaskedSGD:
    """SGD whose pruned weights stay exactly zero: gradients masked before, weights after each step."""

    def __init__(self, model: nn.Module, mask: Mask, cfg: OptimConfig) -> None:
        weights = prunable_weights(model)
        self.params = list(weights.values())
        self.masks = [mask.tensors[n].to(w.device, w.dtype) for n, w in weights.items()]
        self.opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay, foreach=True)

    def step(self, monitor: Optional[StreamMonitor] = None) -> None:
        grads = [p.grad for p in self.params]
        torch._foreach_mul_(grads, self.masks)  # one fused call over all tensors
        if monitor is not None:
            monitor.gradients(grads)
        self.opt.step()
        with torch.no_grad():
            torch._foreach_mul_(self.params, self.masks)
        self.opt.zero_grad(set_to_none=True)


def train_epoch(model: nn.Module, data: Dataset, opt: MaskedSGD, batch_size: int, device: torch.device,
                generator: torch.Generator, monitor: Optional[StreamMonitor] = None) -> float:
    model.train()
    total = torch.zeros((), device=device)
    for images, labels in batches(data.train, batch_size, data, device, generator, sharded=world().active):
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            loss = F.cross_entropy(model(images), labels)
        if monitor is not None:
            monitor.batch_done()
        loss.backward()
        opt.step(monitor)
        total += loss.detach() * len(labels)
    return float(all_sum(total)) / max(len(data.train), 1)


def train(model: nn.Module, data: Dataset, mask: Mask, optim: OptimConfig, criterion: Criterion, max_epochs: int,
          device: torch.device, seed: int, keep_best: bool = False, stream: bool = False,
          on_epoch: Optional[Callable[[dict], None]] = None) -> TrainResult:
    """Train until the criterion says stop or `max_epochs` pass; raises TrainingDiverged on a NaN/inf loss.

    With `stream`, each epoch's record carries IF/GF accumulated from the epoch's own passes."""
    torch.manual_seed(seed)
    opt, result = MaskedSGD(model, mask, optim), TrainResult()
    monitor = StreamMonitor(model) if stream else None
    trained, batch_size = wrap(model, device), max(1, optim.batch_size // world().size)  # same global batch
    for epoch in range(1, max_epochs + 1):
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        if monitor is None:
            loss = train_epoch(trained, data, opt, batch_size, device, generator)
        else:
            with monitor.watching():
                loss = train_epoch(trained, data, opt, batch_size, device, generator, monitor)
        if not torch.isfinite(torch.tensor(loss)):
            raise TrainingDiverged(f"training loss became {loss} in epoch {epoch}; lower the learning rate "
                                   "(--set optim.lr=...) and re-run: finished iterations are kept")
        val_acc = evaluate(model, data.val, data, device)
        streamed = monitor.end_epoch() if monitor else None
        verdict: Verdict = criterion.check(EpochRecord(epoch, val_acc, loss, model, mask, streamed))
        result.epochs, result.flow_seconds = epoch, result.flow_seconds + verdict.flow_seconds
        if keep_best and val_acc > result.best_val_acc:
            result.best_state = copy.deepcopy(model.state_dict())
        result.best_val_acc = max(result.best_val_acc, val_acc)
        row = {"epoch": epoch, "train_loss": loss, "val_acc": val_acc, "distance": verdict.distance,
               "seconds": time.perf_counter() - start}
        result.history.append(row)
        if on_epoch:
            on_epoch(row)
        if verdict.stop:
            result.stop_reason = verdict.reason or MAX_EPOCHS
            break
    result.flow_seconds += monitor.seconds if monitor else 0.0
    return result
