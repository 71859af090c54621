"""Information flow (IF) and gradient flow (GF), as docs/algorithms.md §4.3 defines them.

IF is built from sufficient statistics (per-channel sums, sums of squares and the cross
products of consecutive layers), so the probe estimator here and a streaming estimator that
feeds the training epoch's own activations share one formula.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from incop_core.models.layers import flow_layers
from incop_core.pruning.masks import Mask, prunable_weights

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]
STD_FLOOR = 1e-6


def channel_means(output: torch.Tensor) -> torch.Tensor:
    """a_l(x): conv outputs averaged over H and W, linear outputs as they are (float64)."""
    output = output.detach()
    return (output.float().mean(dim=(2, 3)) if output.dim() == 4 else output).double()


class FlowStats:
    """Running sums over samples: S_l, Q_l per layer and P_l = sum a_l a_{l+1}^T per consecutive pair."""

    def __init__(self) -> None:
        self.n = 0
        self.sums: list[torch.Tensor] = []
        self.squares: list[torch.Tensor] = []
        self.cross: list[torch.Tensor] = []

    def update(self, acts: list[torch.Tensor]) -> None:
        if not self.sums:
            self.sums = [torch.zeros(a.shape[1], dtype=torch.float64, device=a.device) for a in acts]
            self.squares = [s.clone() for s in self.sums]
            self.cross = [torch.zeros(a.shape[1], b.shape[1], dtype=torch.float64, device=a.device)
                          for a, b in zip(acts, acts[1:])]
        self.n += acts[0].shape[0]
        for sum_, square, a in zip(self.sums, self.squares, acts):
            sum_ += a.sum(dim=0)
            square += (a * a).sum(dim=0)
        for cross, a, b in zip(self.cross, acts, acts[1:]):
            cross += a.T @ b  # one matmul per pair

    def connectivity(self) -> list[torch.Tensor]:
        """C_l = mean_x z_l z_{l+1}^T with z = (a - mean) / max(std, 1e-6): signed Pearson correlations."""
        means = [s / self.n for s in self.sums]
        stds = [(q / self.n - m * m).clamp_min(0).sqrt().clamp_min(STD_FLOOR) for q, m in zip(self.squares, means)]
        return [(p / self.n - torch.outer(means[l], means[l + 1])) / torch.outer(stds[l], stds[l + 1])
                for l, p in enumerate(self.cross)]

    def information_flow(self) -> np.ndarray:
        """IF: the mean of each pair's connectivity matrix."""
        return np.array([c.mean().item() for c in self.connectivity()])


def connectivity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C for one pair of activation matrices (samples x channels); the formula the IF uses."""
    stats = FlowStats()
    stats.update([a.double(), b.double()])
    return stats.connectivity()[0]


@contextmanager
def record_outputs(layers: list[nn.Module], sink: Callable[[int, torch.Tensor], None]) -> Iterator[None]:
    handles = [layer.register_forward_hook(lambda _m, _i, out, k=k: sink(k, out)) for k, layer in enumerate(layers)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def probe_mode(model: nn.Module, train: bool) -> Iterator[None]:
    """Eval mode, or train mode with BatchNorm statistics frozen and dropout off; restored afterwards."""
    was_training = {m: m.training for m in model.modules()}
    model.train(train)
    for module in model.modules():
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
            module.eval()
    try:
        yield
    finally:
        for module, mode in was_training.items():
            module.train(mode)


def information_flow(model: nn.Module, probe: Batches) -> np.ndarray:
    """IF over the probe set: eval mode, no grad."""
    layers = [module for _, module in flow_layers(model)]
    stats, current = FlowStats(), [None] * len(layers)

    def keep(k: int, out: torch.Tensor) -> None:
        current[k] = channel_means(out)

    with probe_mode(model, train=False), torch.no_grad(), record_outputs(layers, keep):
        for images, _ in probe():
            model(images)
            stats.update(current)
    return stats.information_flow()


def gradient_flow(model: nn.Module, probe: Batches, mask: Mask) -> np.ndarray:
    """GF: per-layer Frobenius norm of the masked loss gradient, averaged over probe batches."""
    weights = prunable_weights(model)
    masks = [mask.tensors[n].to(w.device, w.dtype) for n, w in weights.items()]
    total, batches = torch.zeros(len(weights), dtype=torch.float64), 0
    with probe_mode(model, train=True):
        for images, labels in probe():
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            norms = [(w.grad * m).norm() for w, m in zip(weights.values(), masks)]
            total += torch.stack(norms).double().cpu()
            batches += 1
    model.zero_grad(set_to_none=True)
    return (total / max(batches, 1)).numpy()


def flow_distance(current: np.ndarray, reference: np.ndarray) -> float:
    """|| F_t - F* ||_2; inf when either holds NaN or inf ("not yet consistent")."""
    diff = np.asarray(current, dtype=float) - np.asarray(reference, dtype=float)
    return float(np.linalg.norm(diff)) if np.all(np.isfinite(diff)) else float("inf")
