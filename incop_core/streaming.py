"""Streaming flow estimators (SPEC 3.4): IF statistics and GF norms from the training epoch's own
forward/backward passes, so a check costs no extra pass over data."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .distributed import all_sum, world
from .flows import FlowStats, channel_means, flow_layers, record_outputs


class StreamMonitor:
    """Accumulates one epoch's IF sufficient statistics and masked-gradient norms."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [module for _, module in flow_layers(model)]
        self.seconds = 0.0
        self._reset()

    def _reset(self) -> None:
        self.stats, self.current = FlowStats(), [None] * len(self.layers)
        self.gf_sum, self.gf_batches = None, 0

    def _keep(self, k: int, out: torch.Tensor) -> None:
        if self.layers[k].training and torch.is_grad_enabled():  # training passes only, never evaluation
            start = time.perf_counter()
            self.current[k] = channel_means(out)
            self.seconds += time.perf_counter() - start

    @contextmanager
    def watching(self) -> Iterator["StreamMonitor"]:
        """Hooks live only inside the training loop, so probe and evaluation passes are never counted."""
        with record_outputs(self.layers, self._keep):
            yield self

    def batch_done(self) -> None:
        start = time.perf_counter()
        if all(a is not None for a in self.current):
            self.stats.update(self.current)
        self.current = [None] * len(self.layers)
        self.seconds += time.perf_counter() - start

    def gradients(self, grads: list[torch.Tensor]) -> None:
        """Add this step's masked-gradient Frobenius norms (one fused call, no device sync)."""
        start = time.perf_counter()
        norms = torch.stack(torch._foreach_norm(grads)).double()
        self.gf_sum = norms if self.gf_sum is None else self.gf_sum + norms
        self.gf_batches += 1
        self.seconds += time.perf_counter() - start

    def _reduce(self) -> None:
        """Sum the statistics over ranks, so every process sees the whole epoch."""
        if not world().active:
            return
        for tensor in [*self.stats.sums, *self.stats.squares, *self.stats.cross]:
            all_sum(tensor)
        counts = all_sum(torch.tensor([float(self.stats.n), float(self.gf_batches)], dtype=torch.float64,
                                      device=self.stats.sums[0].device if self.stats.sums else None))
        self.stats.n, self.gf_batches = int(counts[0]), int(counts[1])
        if self.gf_sum is not None:
            all_sum(self.gf_sum)

    def end_epoch(self) -> dict[str, np.ndarray]:
        """This epoch's streamed IF and GF; resets the accumulators for the next epoch."""
        start = time.perf_counter()
        self._reduce()
        flows = {"if": self.stats.information_flow() if self.stats.n else np.array([]),
                 "gf": (self.gf_sum / max(self.gf_batches, 1)).cpu().numpy() if self.gf_sum is not None else np.array([])}
        self._reset()
        self.seconds += time.perf_counter() - start
        return flows
