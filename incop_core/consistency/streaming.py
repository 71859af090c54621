"""Streaming flow estimators (docs/algorithms.md §4.3–4.4): IF statistics and GF norms from the training epoch's own
forward/backward passes, so a check costs no extra pass over data."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from torch import nn

from incop_core.platforms.distributed import all_sum, world
from incop_core.consistency.signals import FlowStats, record_outputs
from incop_core.models.layers import flow_layers


FLUSH_EVERY = 32  # batches of channel means folded into the statistics at once (few ops per step)


class StreamMonitor:
    """Accumulates one epoch's IF sufficient statistics and masked-gradient norms."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [module for _, module in flow_layers(model)]
        self.seconds = 0.0
        self._reset()

    def _reset(self) -> None:
        self.stats, self.current = FlowStats(), [None] * len(self.layers)
        self.pending: list[list[torch.Tensor]] = []
        self.gf_sum, self.gf_batches = None, 0

    def _keep(self, k: int, out: torch.Tensor) -> None:
        if self.layers[k].training and torch.is_grad_enabled():  # training passes only, never evaluation
            start = time.perf_counter()
            out = out.detach()
            self.current[k] = out.mean(dim=(2, 3)) if out.dim() == 4 else out
            self.seconds += time.perf_counter() - start

    @contextmanager
    def watching(self) -> Iterator["StreamMonitor"]:
        """Hooks live only inside the training loop, so probe and evaluation passes are never counted."""
        with record_outputs(self.layers, self._keep):
            yield self

    def batch_done(self) -> None:
        if all(a is not None for a in self.current):
            self.pending.append(self.current)
        self.current = [None] * len(self.layers)
        if len(self.pending) >= FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        """Fold the pending batches' channel means into the float64 statistics."""
        start = time.perf_counter()
        if self.pending:
            self.stats.update([torch.cat(column).double() for column in zip(*self.pending)])
            self.pending = []
        self.seconds += time.perf_counter() - start

    def gradients(self, grads: list[torch.Tensor]) -> None:
        """Add this step's masked-gradient Frobenius norms (two fused calls, no device sync)."""
        start = time.perf_counter()
        norms = torch._foreach_norm(grads)
        if self.gf_sum is None:
            self.gf_sum = [n.double() for n in norms]
        else:
            torch._foreach_add_(self.gf_sum, norms)
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
        for tensor in self.gf_sum or []:
            all_sum(tensor)

    def end_epoch(self) -> dict[str, np.ndarray]:
        """This epoch's streamed IF and GF; resets the accumulators for the next epoch."""
        self._flush()
        start = time.perf_counter()
        self._reduce()
        gf = torch.stack(self.gf_sum).cpu().numpy() / max(self.gf_batches, 1) if self.gf_sum else np.array([])
        flows = {"if": self.stats.information_flow() if self.stats.n else np.array([]), "gf": gf}
        self._reset()
        self.seconds += time.perf_counter() - start
        return flows
