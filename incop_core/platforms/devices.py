"""Device choice and the CUDA fast paths (bf16 autocast, channels_last); datasets/placement.py keeps data on the GPU."""

from __future__ import annotations

from contextlib import nullcontext
from typing import ContextManager

import torch
from torch import nn

from incop_core.platforms.distributed import world
from incop_core.foundations.errors import DeviceError


def resolve(device: str) -> torch.device:
    """auto: CUDA when present, else the CPU; under torchrun each process takes the GPU of its local rank."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("device cuda was asked for (run.device, --device) but this machine has no visible CUDA GPU: "
                          "choose auto or cpu, or run on a GPU worker")
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    chosen = torch.device("cuda", world().local_rank) if world().active else torch.device("cuda")
    if chosen.index is not None:
        torch.cuda.set_device(chosen)
    return chosen


def autocast(device: torch.device) -> ContextManager:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model
