"""Multi-process training under `torchrun --nproc_per_node N`: one process per GPU (gloo on the CPU).

Every rank runs the same loop on identical weights (DDP averages gradients), so pruning and stopping
decisions agree; each rank trains on its shard of every epoch, and rank 0 alone writes files.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import ContextManager

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


@lru_cache(maxsize=1)
def world() -> World:
    """The process group from torchrun's environment (initialised once); a single process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier() -> None:
    if world().active:
        dist.barrier()


def main_only(context: ContextManager) -> ContextManager:
    """`context` on rank 0, nothing on the others."""
    return context if world().is_main else nullcontext()


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (in place; returned for convenience)."""
    if world().active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP around the model when several processes train it."""
    if not world().active:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard(order: torch.Tensor) -> torch.Tensor:
    """This rank's share of an epoch's permutation (disjoint across ranks, same seed everywhere)."""
    w = world()
    return order[w.rank::w.size] if w.active else order
