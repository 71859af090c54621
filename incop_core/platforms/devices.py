"""Device choice and the CUDA fast paths (bf16 autocast, channels_last, data kept on the GPU)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from typing import ContextManager

import torch
from torch import nn

from incop_core.datasets.data import Dataset, Split
from incop_core.platforms.distributed import world
from incop_core.foundations.errors import DeviceError

GPU_DATA_SHARE = 0.25  # keep a data set on the GPU when it takes at most this share of free memory


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


def place_dataset(data: Dataset, device: torch.device) -> Dataset:
    """Move the uint8 splits to the GPU when they fit comfortably, else pin them for async copies."""
    if device.type != "cuda":
        return data
    size = sum(s.images.nbytes + s.labels.nbytes for s in (data.train, data.val, data.test))
    free, _ = torch.cuda.mem_get_info(device)
    if size <= GPU_DATA_SHARE * free:
        move = lambda s: Split(s.images.to(device), s.labels.to(device))  # noqa: E731
    else:
        move = lambda s: Split(s.images.pin_memory(), s.labels.pin_memory())  # noqa: E731
    return replace(data, train=move(data.train), val=move(data.val), test=move(data.test))
