"""What the publisher reads from an ONNX file: opset, the onnxruntime it needs, a default input spec, and
whether onnxruntime loads it and the input spec fits its real input."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from .errors import RegistryError

# The oldest onnxruntime release that implements each ONNX opset (onnxruntime's version matrix).
MIN_ORT_FOR_OPSET = {11: "1.0", 12: "1.3", 13: "1.6", 14: "1.8", 15: "1.10", 16: "1.11", 17: "1.12",
                     18: "1.14", 19: "1.15", 20: "1.17", 21: "1.18", 22: "1.20", 23: "1.22"}
DTYPES = {1: "float32", 10: "float16", 11: "float64", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
          7: "int64", 9: "bool"}
LAYOUTS = {"NCHW": (1, slice(2, 4)), "NHWC": (3, slice(1, 3))}  # where channels and size sit in the shape
SPEC_KEYS = {"input_name", "shape", "dtype", "layout", "channels", "size", "scale", "mean", "std", "labels"}


def load_model(path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError and others for a bad file
        raise RegistryError(f"{path} is not a readable ONNX model ({type(exc).__name__}); "
                            "pass the .onnx file that export wrote") from None


def check_loads(path: Path) -> None:
    """Open the model with onnxruntime on the CPU, as a device will; refuse it in one sentence if that fails."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level, options.intra_op_num_threads = 3, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail, InvalidGraph, NotImplemented, ...
        reason = " ".join(str(exc).split()).split(" failed:", 1)[-1]  # drop "[ONNXRuntimeError] ... Load ... failed:"
        reason = re.sub(r"(?i)\berror\s*:", "error", reason)  # the CLI prints exactly one "error:"
        reason = reason if len(reason) <= 160 else "..." + reason[-160:]
        raise RegistryError(f"onnxruntime cannot load {path} ({reason}); export it again and use only operators "
                            "and an opset that onnxruntime supports") from None


def graph_inputs(model: Any) -> dict[str, tuple[list, int]]:
    """Each real graph input (not an initializer): its dims (None where dynamic) and ONNX element type."""
    initializers = {i.name for i in model.graph.initializer}
    found = {}
    for item in model.graph.input:
        if item.name not in initializers:
            tensor = item.type.tensor_type
            found[item.name] = ([d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim],
                                tensor.elem_type)
    return found


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
    inputs = graph_inputs(model)
    if not inputs:
        raise RegistryError("the ONNX model has no graph input; export the model with an image input")
    name, (shape, elem_type) = next(iter(inputs.items()))
    spec = {"input_name": name, "shape": shape, "dtype": DTYPES.get(elem_type, f"ONNX type {elem_type}"),
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
            spec[key] = _broadcast(spec[key], channels)
        if channels and len(spec.get(key) or []) != channels:
            raise RegistryError(f"input spec {key} has {len(spec.get(key) or [])} values for {channels} channels; "
                                f"give one {key} per channel")
    if any(s == 0 for s in spec.get("std") or []):
        raise RegistryError("input spec std contains 0; use the per-channel standard deviation of the data")
    return spec


def _broadcast(value: Any, channels: int) -> list:
    """One mean or std as a float per channel; an int too large for a float stays as given, for check_runs to refuse."""
    try:
        return [float(value)] * channels
    except OverflowError:
        return [value] * channels


def check_input_spec(model: Any, spec: dict) -> dict:
    """Refuse a spec that does not fit the graph's real input: its name, rank, fixed dims, dtype, channels, size."""
    inputs = graph_inputs(model)
    if spec.get("input_name") not in inputs:
        raise RegistryError(f"input spec input_name {spec.get('input_name')!r} is not an input of the model (it has "
                            f"{sorted(inputs)}); use one of those names or omit input_name")
    dims, elem_type = inputs[spec["input_name"]]
    _check_shape(spec.get("shape"), dims)
    _check_dtype(spec.get("dtype"), DTYPES.get(elem_type, f"ONNX type {elem_type}"))
    _check_image(spec, dims)
    return spec


def _equal(given: Any, real: Optional[int]) -> bool:
    """A positive integer equal to `real`, or any positive integer where `real` is dynamic (None)."""
    is_int = isinstance(given, int) and not isinstance(given, bool) and given > 0
    return is_int and (real is None or given == real)


def _fits(given: Any, real: Optional[int]) -> bool:
    """A shape dim fits when it is dynamic (None or a name like "batch") or `_equal`."""
    return given is None or isinstance(given, str) or _equal(given, real)


def _check_shape(shape: Any, dims: list) -> None:
    if not isinstance(shape, list) or len(shape) != len(dims) or not all(map(_fits, shape, dims)):
        raise RegistryError(f"input spec shape {shape!r} does not fit the model's input shape {dims} (None is "
                            "dynamic); give that shape or omit shape")


def _check_dtype(dtype: Any, real: str) -> None:
    if dtype not in DTYPES.values():
        raise RegistryError(f"input spec dtype {dtype!r} is not one of {sorted(set(DTYPES.values()))}; use the "
                            f"model's input dtype {real}")
    if dtype != real:
        raise RegistryError(f"input spec dtype {dtype} differs from the model's input dtype {real}; use {real} "
                            "or omit dtype")


def _check_image(spec: dict, dims: list) -> None:
    layout = spec.get("layout", "NCHW")
    if layout not in LAYOUTS:
        raise RegistryError(f"input spec layout {layout!r} is not NCHW or NHWC; use one of those")
    if "channels" not in spec and "size" not in spec:
        return
    if len(dims) != 4:
        raise RegistryError(f"input spec channels and size describe an image but the model's input shape is {dims}; "
                            "omit channels and size")
    where, hw = LAYOUTS[layout]
    if not _equal(spec.get("channels"), dims[where]):
        raise RegistryError(f"input spec channels {spec.get('channels')!r} does not match the model's input shape "
                            f"{dims} ({layout}); give channels {dims[where]} or omit it")
    size = spec.get("size")
    if not isinstance(size, list) or len(size) != 2 or not all(map(_equal, size, dims[hw])):
        raise RegistryError(f"input spec size {size!r} does not match the model's input shape {dims} ({layout}); "
                            f"give size {dims[hw]} or omit it")
