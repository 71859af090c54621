"""Masked SGD: pruned weights (and, in structured scopes, the BatchNorms of whole pruned filters) stay exactly zero
through every step."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from incop_core.consistency.streaming import StreamMonitor
from incop_core.pruning.masks import Mask, dead_filter_norms, prunable_weights
from incop_core.training.optim import OptimConfig


class MaskedSGD:
    """SGD whose pruned weights stay exactly zero: gradients masked before, weights after each step. With `norms`,
    the BatchNorm scale and shift of channels whose filter is pruned whole stay zero too (structured scopes)."""

    def __init__(self, model: nn.Module, mask: Mask, cfg: OptimConfig, norms: bool = False) -> None:
        weights = prunable_weights(model)
        self.params = list(weights.values())
        self.masks = [mask.tensors[n].to(w.device, w.dtype) for n, w in weights.items()]
        self.layers = len(self.params)  # gradient flow is measured on the prunable weights only, never the BatchNorms
        for param, keep in dead_filter_norms(model, mask) if norms else []:
            self.params.append(param)
            self.masks.append(keep.to(param.device, param.dtype))
        self.opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay, foreach=True)

    def step(self, monitor: Optional[StreamMonitor] = None) -> None:
        grads = [p.grad for p in self.params]
        torch._foreach_mul_(grads, self.masks)  # one fused call over all tensors
        if monitor is not None:
            monitor.gradients(grads[:self.layers])
        self.opt.step()
        with torch.no_grad():
            torch._foreach_mul_(self.params, self.masks)
        self.opt.zero_grad(set_to_none=True)
