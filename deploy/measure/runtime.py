"""onnxruntime sessions on the CPU, and reading ONNX files with one clear error when they are not ONNX."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx

from ..errors import ModelFileError

PROVIDER = "CPUExecutionProvider"


def read_model(path: Path) -> onnx.ModelProto:
    """Load an ONNX file's protobuf; raises ModelFileError when it is missing, corrupt or not ONNX."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist; check the path or run `incop export` first")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        proto = None
    if proto is None or not proto.opset_import or not proto.graph.node or not proto.graph.input:
        raise ModelFileError(f"{path} is not a readable ONNX model (corrupt or another format); "
                             f"pass a model written by `incop export`")
    return proto


def ort_reason(exc: Exception) -> str:
    """onnxruntime's own reason, without its boilerplate prefix (status code, path, "Fatal error")."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = re.sub(r"^\[ONNXRuntimeError\].*?failed:\s*", "", text)
    return re.sub(r"^(Fatal error|\[ONNXRuntimeError\][^:]*):\s*", "", text)[:160]


def session_options(threads: int = 0, optimization: str = "all", denormal_as_zero: bool = True):
    """Session options: intra-op threads (0 = onnxruntime's default), graph optimisation level, DAZ."""
    import onnxruntime as ort

    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = levels[optimization]
    options.log_severity_level = 3
    if denormal_as_zero:
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
    return options


def session(path: Path, threads: int = 0, optimization: str = "all"):
    """An onnxruntime CPU session for `path`; a file onnxruntime cannot load is a ModelFileError."""
    import onnxruntime as ort

    read_model(path)
    try:
        return ort.InferenceSession(str(path), session_options(threads, optimization), providers=[PROVIDER])
    except Exception as exc:
        raise ModelFileError(f"onnxruntime cannot load {Path(path).name} ({ort_reason(exc)}); check that `incop "
                             "export` wrote it for this onnxruntime version") from None


def logits(path: Path, images: np.ndarray, batch: int = 256, threads: int = 0) -> np.ndarray:
    """The model's outputs for `images` (float32 NCHW), in batches."""
    sess = session(path, threads)
    name = sess.get_inputs()[0].name
    chunks = [sess.run(None, {name: np.ascontiguousarray(images[s:s + batch], dtype=np.float32)})[0]
              for s in range(0, len(images), batch)]
    return np.concatenate(chunks)


def accuracy(path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy measured through onnxruntime."""
    return float((logits(path, images).argmax(1) == np.asarray(labels)).mean())


def input_spec(path: Path) -> dict:
    """The first graph input's name, shape (a string for symbolic dims) and element type."""
    proto = read_model(path)
    initializers = {i.name for i in proto.graph.initializer}
    graph_input = next(i for i in proto.graph.input if i.name not in initializers)
    tensor = graph_input.type.tensor_type
    shape = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in tensor.shape.dim]
    return {"name": graph_input.name, "shape": shape,
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name}
