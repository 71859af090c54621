"""What the publisher reads from an ONNX file: opset, the onnxruntime it needs, and a default input spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from .registry_errors import RegistryError

# The oldest onnxruntime release that implements each ONNX opset (onnxruntime's version matrix).
MIN_ORT_FOR_OPSET = {11: "1.0", 12: "1.3", 13: "1.6", 14: "1.8", 15: "1.10", 16: "1.11", 17: "1.12",
                     18: "1.14", 19: "1.15", 20: "1.17", 21: "1.18", 22: "1.20", 23: "1.22"}
DTYPES = {1: "float32", 10: "float16", 11: "float64", 2: "uint8", 3: "int8", 7: "int64"}
SPEC_KEYS = {"input_name", "shape", "dtype", "layout", "channels", "size", "scale", "mean", "std", "labels"}


def load_model(path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError and others for a bad file
        raise RegistryError(f"{path} is not a readable ONNX model ({type(exc).__name__}); "
                            "pass the .onnx file that export wrote") from None


def default_opset(model: Any) -> int:
    versions = [op.version for op in model.opset_import if op.domain in ("", "ai.onnx")]
    return max(versions) if versions else 0


def min_onnxruntime(opset: int) -> str:
    """The oldest onnxruntime that runs this opset (the installed one for opsets newer than the table)."""
    if opset in MIN_ORT_FOR_OPSET:
        return MIN_ORT_FOR_OPSET[opset]
    if opset < min(MIN_ORT_FOR_OPSET):
        return "1.0"
    from importlib.metadata import version

    return ".".join(version("onnxruntime").split(".")[:2])


def default_input_spec(model: Any) -> dict:
    """Read name, shape and dtype of the first graph input that is not an initializer; NCHW is assumed."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise RegistryError("the ONNX model has no graph input; export the model with an image input")
    tensor = inputs[0].type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    spec = {"input_name": inputs[0].name, "shape": shape, "dtype": DTYPES.get(tensor.elem_type, "float32"),
            "layout": "NCHW", "scale": 1 / 255}
    if len(shape) == 4 and all(isinstance(d, int) for d in shape[1:]):
        channels = shape[1]
        spec.update(channels=channels, size=shape[2:], mean=[0.0] * channels, std=[1.0] * channels)
    return spec


def merge_input_spec(model: Any, given: Optional[dict]) -> dict:
    """The model's own input spec overridden by the caller's fields (mean/std, labels, ...)."""
    given = dict(given or {})
    unknown = set(given) - SPEC_KEYS
    if unknown:
        raise RegistryError(f"unknown input spec field(s) {sorted(unknown)}; use {sorted(SPEC_KEYS)}")
    spec = {**default_input_spec(model), **given}
    channels = spec.get("channels")
    for key in ("mean", "std"):
        if isinstance(spec.get(key), (int, float)) and channels:
            spec[key] = [float(spec[key])] * channels
        if channels and len(spec.get(key) or []) != channels:
            raise RegistryError(f"input spec {key} has {len(spec.get(key) or [])} values for {channels} channels; "
                                f"give one {key} per channel")
    if any(s == 0 for s in spec.get("std") or []):
        raise RegistryError("input spec std contains 0; use the per-channel standard deviation of the data")
    return spec
