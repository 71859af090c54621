"""Stage 5: ONNX export that verifies itself (onnx.checker, then onnxruntime against PyTorch).

Uses torch.onnx's TorchScript exporter (dynamo=False): it writes opset 17 with a dynamic batch
axis directly, in a fraction of a second; the dynamo exporter in torch 2.14 only targets opset 18
and fails to down-convert these graphs.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
import torch
from torch import nn

from incop_core.foundations.fileio import write_bytes_atomic

from ..measure.runtime import logits
from ..errors import ExportFailed
from .layers import capture_inputs

OPSET = 17
INPUT, OUTPUT = "input", "logits"
MAX_ABS = 1e-4            # parity tolerance, float32
MIN_AGREEMENT = 0.999     # top-1 agreement with PyTorch


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """The TorchScript exporter dumps its whole IR graph to fd 2 on failure; keep that off the terminal."""
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _export_bytes(module: nn.Module, example: tuple, opset: int) -> bytes:
    buffer = io.BytesIO()
    names = [f"{INPUT}{i or ''}" for i in range(len(example))]
    axes = {name: {0: "batch"} for name in (*names, OUTPUT)}
    with warnings.catch_warnings(), _quiet_stderr():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, buffer, dynamo=False, opset_version=opset, input_names=names,
                          output_names=[OUTPUT], dynamic_axes=axes, do_constant_folding=True)
    return buffer.getvalue()


def locate_failure(model: nn.Module, example: torch.Tensor, opset: int = OPSET) -> str:
    """Name of the first leaf layer (in call order) that does not export on its own."""
    names = {m: n for n, m in model.named_modules() if not list(m.children())}
    for module, inputs in capture_inputs(model, list(names), example).items():
        try:
            _export_bytes(module, inputs, opset)
        except Exception:
            return f"{names[module]} ({type(module).__name__})"
    return "outside any single layer (in the model's forward code)"


def check(proto: onnx.ModelProto, what: str) -> None:
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportFailed(f"{what} fails onnx.checker ({str(exc).splitlines()[0][:160]}); "
                           f"delete the export folder and run `incop export` again") from None


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, opset: int = OPSET) -> Path:
    """Export `model` (eval mode) with a dynamic batch axis, check it fully, write it atomically."""
    model = model.eval()
    try:
        data = _export_bytes(model, (example,), opset)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ExportFailed(f"ONNX export failed at layer {locate_failure(model, example, opset)}: {first}; "
                           f"use ONNX-exportable operations in that layer") from None
    check(onnx.load_from_string(data), f"the ONNX export of {Path(path).name}")
    write_bytes_atomic(Path(path), data)
    return Path(path)


def torch_logits(model: nn.Module, images: torch.Tensor, batch: int = 256) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model.eval()(images[s:s + batch]) for s in range(0, len(images), batch)]).numpy()


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Max abs difference and top-1 agreement of two logit arrays (pure)."""
    return {"images": int(len(reference)), "max_abs": float(np.abs(reference - candidate).max()),
            "top1_agreement": float((reference.argmax(1) == candidate.argmax(1)).mean())}


def verify_parity(name: str, reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Compare PyTorch (`reference`) and onnxruntime logits; raises ExportFailed past 1e-4 or under 99.9 % agreement."""
    figures = compare(reference, candidate)
    if figures["max_abs"] > MAX_ABS or figures["top1_agreement"] < MIN_AGREEMENT:
        raise ExportFailed(f"{name} disagrees with PyTorch (max abs {figures['max_abs']:.2e}, limit {MAX_ABS:g}; "
                           f"top-1 agreement {100 * figures['top1_agreement']:.2f} %, needs {100 * MIN_AGREEMENT:g} "
                           f"%); check the model's custom layers, it does not export faithfully")
    return {**figures, "max_abs_limit": MAX_ABS, "min_agreement": MIN_AGREEMENT}


def parity(path: Path, model: nn.Module, images: torch.Tensor) -> dict:
    """onnxruntime against PyTorch on `images` (see verify_parity)."""
    return verify_parity(Path(path).name, torch_logits(model, images), logits(path, images.numpy()))
