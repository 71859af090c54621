"""Publish runs the model as a device will before anything is signed or written: the input spec's fields, a memory
bound from the graph's static shapes, then one inference on a mid-grey image in the device's capped session.

The static bound sums the bytes of every tensor whose shape onnx's shape inference knows once the input is fixed
to the one-image batch predict builds, plus the targets of ConstantOfShape, Expand, Tile and Resize whose shapes
are constants (inference may fail on an odd graph); a shape only known at run time is caught by the session's
arena cap (device_checks), which fails the probe with an error instead of exhausting the publisher.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .device_checks import (MAX_RUN_BYTES, capped_session, input_problem, input_shape, mib, ort_reason,
                            out_of_memory, output_problem, spec_problem)
from .errors import RegistryError

# op -> which input holds the output's shape (ConstantOfShape, Expand), repeats (Tile) or sizes (Resize)
SHAPE_INPUT = {"ConstantOfShape": 0, "Expand": 1, "Tile": 1, "Resize": 3}
OUTPUT_FIX = "export a classifier whose first output is one row of finite float class scores"


def check_runs(path: Path, model: Any, spec: dict) -> None:
    """Refuse, in one sentence, a model or input spec that predict could not run within a device's memory."""
    _check_spec(spec)
    _check_memory(model, spec)
    outputs = _probe(path, spec)
    problem = output_problem(outputs)
    if problem:
        raise RegistryError(f"on a mid-grey image built from the input spec the model {problem}; {OUTPUT_FIX}")
    width, labels = np.asarray(outputs[0]).shape[-1], spec.get("labels")
    if labels and len(labels) != width:
        raise RegistryError(f"the model gives {width} scores for {len(labels)} labels; give {width} labels in "
                            "--input-spec or omit labels")


def _check_spec(spec: dict) -> None:
    if "channels" not in spec and "size" not in spec:
        raise RegistryError(f"the model's input shape {spec.get('shape')} is not a batch of images (N, C, H, W), "
                            "which is what a device feeds; export the model with an image input")
    problem = spec_problem(spec)
    if problem:
        field, rule = problem
        raise RegistryError(f"input spec {field} {spec.get(field)!r:.60} is not {rule}; fix it in --input-spec")
    problem = input_problem(spec)
    if problem:
        raise RegistryError(f"the input spec {problem}; export the model for smaller images")


def _check_memory(model: Any, spec: dict) -> None:
    sizes = _inferred_sizes(model, spec)
    for name, size in _constant_targets(model).items():
        sizes[name] = max(size, sizes.get(name, 0))
    total = sum(sizes.values())
    if total > MAX_RUN_BYTES:
        name, biggest = max(sizes.items(), key=lambda item: item[1])
        raise RegistryError(f"the model computes {mib(total)} of tensors for one image ({name!r} alone is "
                            f"{mib(biggest)}), above the {mib(MAX_RUN_BYTES)} a device allows; export a model "
                            "that needs less memory")


def _inferred_sizes(model: Any, spec: dict) -> dict[str, int]:
    """Bytes of every tensor onnx's shape inference sizes for the one-image input (none when inference fails)."""
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for item in fixed.graph.input:
        if item.name == spec["input_name"]:
            for dim, value in zip(item.type.tensor_type.shape.dim, input_shape(spec)):
                dim.Clear()
                dim.dim_value = value
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception:  # onnx raises InferenceError, ValidationError, ValueError (over 2 GB), ...
        return {}
    values = [*inferred.graph.value_info, *inferred.graph.output]
    return {v.name: _bytes(v.type.tensor_type) for v in values if v.type.HasField("tensor_type")}


def _bytes(tensor: Any) -> int:
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if not tensor.HasField("shape") or None in dims:
        return 0
    return math.prod(dims) * _itemsize(tensor.elem_type)


def _itemsize(elem_type: int, default: int = 4) -> int:
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return default


def _constants(model: Any) -> dict[str, Any]:
    """Initializers and Constant node outputs by name, as TensorProtos."""
    found = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            found.update({node.output[0]: a.t for a in node.attribute if a.name == "value"})
    return found


def _constant_targets(model: Any) -> dict[str, int]:
    """At least how many bytes each ConstantOfShape, Expand, Tile or Resize output takes, where a constant sets it."""
    from onnx import numpy_helper

    constants, sizes = _constants(model), {}
    for node in model.graph.node:
        where = SHAPE_INPUT.get(node.op_type)
        if where is None or len(node.input) <= where or node.input[where] not in constants:
            continue
        target = numpy_helper.to_array(constants[node.input[where]])
        if target.dtype.kind in "iu" and 0 < target.size <= 16:
            count = math.prod(max(int(v), 0) for v in target.reshape(-1))
            sizes[node.output[0]] = count * _element_bytes(node, constants)
    return sizes


def _element_bytes(node: Any, constants: dict) -> int:
    """The byte size of one output element: ConstantOfShape's value type, else a constant data input's, else 1."""
    values = [a.t for a in node.attribute if a.name == "value"]
    if node.op_type == "ConstantOfShape":
        return _itemsize(values[0].data_type) if values else 4
    data = constants.get(node.input[0])
    return _itemsize(data.data_type, 1) if data is not None else 1


def probe_input(spec: dict) -> np.ndarray:
    """The batch predict builds from an image of mid-grey (128 of 255) pixels."""
    from .predict import normalize

    height, width = spec["size"]
    pixels = np.full((height, width, spec["channels"]), 128 * float(spec.get("scale", 1 / 255)), np.float32)
    return normalize(pixels, spec)


def _probe(path: Path, spec: dict) -> list:
    x = probe_input(spec)
    try:
        return capped_session(path).run(None, {spec["input_name"]: x})
    except Exception as exc:  # onnxruntime's errors share no base class but Exception
        if out_of_memory(exc):
            raise RegistryError(f"the model needs more than the {mib(MAX_RUN_BYTES)} of memory a device allows "
                                "to run one image; export a model that needs less memory") from None
        raise RegistryError(f"the model fails on the {x.dtype} input of shape {list(x.shape)} built from the input "
                            f"spec ({ort_reason(exc)}); fix --input-spec or export the model again") from None
