"""What a device checks before and after it runs a model; publish runs the same checks (numpy and onnxruntime only).

Memory: the input predict builds is at most MAX_INPUT_BYTES (preprocessing holds a few copies of it), and every
tensor onnxruntime allocates while running comes from one arena capped at MAX_RUN_BYTES, so a model that asks for
more fails with an error instead of exhausting the device. Constant folding is off in that session: it would
materialise constant subgraphs (ConstantOfShape, Expand, ...) outside the arena while the session loads.
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional, Sequence

import numpy as np

MAX_INPUT_BYTES = 256 << 20
MAX_RUN_BYTES = 1 << 30
MAX_MAGNITUDE = 1e6  # |mean|, std and scale above this (or std below 1/this) only make NaN or infinity
LAYOUTS = ("NCHW", "NHWC")
_ARENA: dict = {}
# onnxruntime's error-code prefix, "Load model from PATH failed:" and C++ source locations
ORT_NOISE = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : |Load model from .* failed:"
                       r"|\S+\.(?:cc|h):\d+ \S+?\(.*?\) ")


def mib(count: int) -> str:
    return f"{count / (1 << 20):,.0f} MiB" if count < 1 << 30 else f"{count / (1 << 30):,.1f} GiB"


def _number(value: Any, low: float = -MAX_MAGNITUDE, high: float = MAX_MAGNITUDE) -> bool:
    """A number from low to high (NaN compares false; a huge int is compared exactly, never made a float)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _per_channel(value: Any, channels: Any, low: float = -MAX_MAGNITUDE) -> bool:
    values = value if isinstance(value, list) and len(value) in (1, channels) else [value]
    return all(_number(v, low) for v in values)


def _positive_int(value: Any, most: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= most


def _dtype_ok(name: Any) -> bool:
    try:
        return np.dtype(name).kind in "fiu"
    except (TypeError, ValueError):
        return False


def _labels_ok(labels: Any) -> bool:
    return labels is None or isinstance(labels, list) and all(isinstance(v, str) for v in labels)


def spec_problem(spec: dict) -> Optional[tuple[str, str]]:
    """The first input spec field predict cannot use and what it must be, or None when every field is usable."""
    channels, size = spec.get("channels"), spec.get("size")
    rules = [("channels", _positive_int(channels, 4096), "an integer from 1 to 4096"),
             ("size", isinstance(size, list) and len(size) == 2 and all(_positive_int(v, 65536) for v in size),
              "[height, width] in pixels"),
             ("dtype", _dtype_ok(spec.get("dtype", "float32")), "a numeric dtype such as float32"),
             ("layout", spec.get("layout", "NCHW") in LAYOUTS, "NCHW or NHWC"),
             ("scale", _number(spec.get("scale", 1 / 255), 1 / MAX_MAGNITUDE), "a number from 1e-6 to 1e6"),
             ("mean", _per_channel(spec.get("mean", 0.0), channels), "one number per channel from -1e6 to 1e6"),
             ("std", _per_channel(spec.get("std", 1.0), channels, 1 / MAX_MAGNITUDE),
              "one number per channel from 1e-6 to 1e6"),
             ("labels", _labels_ok(spec.get("labels")), "a list of label strings, one per class")]
    return next(((field, rule) for field, ok, rule in rules if not ok), None)


def input_shape(spec: dict) -> list[int]:
    """The shape of the one-image batch predict builds from a usable spec."""
    height, width = spec["size"]
    channels = spec["channels"]
    return [1, height, width, channels] if spec.get("layout") == "NHWC" else [1, channels, height, width]


def input_problem(spec: dict) -> Optional[str]:
    """Why predict must not build this spec's input (too many bytes), or None."""
    shape = input_shape(spec)
    size = math.prod(shape) * np.dtype(spec.get("dtype", "float32")).itemsize
    if size > MAX_INPUT_BYTES:
        return (f"declares a {'x'.join(map(str, shape))} input of {mib(size)}, above the {mib(MAX_INPUT_BYTES)} "
                "a device builds for one image")
    return None


def _arena_options(ort: Any) -> Any:
    """Session options drawing every tensor from the process's capped arena (registered once)."""
    options = ort.SessionOptions()
    options.log_severity_level = 4  # the refusal is reported as one sentence, not as onnxruntime's log line
    if "registered" not in _ARENA:  # registering twice is harmless, so two threads racing here do no harm
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg(MAX_RUN_BYTES, -1, -1, -1))
        _ARENA["registered"] = True
    options.add_session_config_entry("session.use_env_allocators", "1")
    return options


def capped_session(path: Any) -> Any:
    """An onnxruntime CPU session whose run allocates at most MAX_RUN_BYTES; raises onnxruntime's own errors."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), _arena_options(ort), providers=["CPUExecutionProvider"],
                                disabled_optimizers=["ConstantFolding"])


def ort_reason(exc: Exception) -> str:
    """onnxruntime's message: its first line without ORT_NOISE, the final period or an "error:" of its own."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = re.sub(r"(?i)\berror\s*:", "error", ORT_NOISE.sub("", text))  # the CLI prints exactly one "error:"
    return text.strip().rstrip(".")[:200] or type(exc).__name__


def out_of_memory(exc: Exception) -> bool:
    """Whether an onnxruntime error is the capped arena refusing an allocation."""
    return "Available memory of" in str(exc) or "bfc_arena" in str(exc)


def output_problem(outputs: Sequence[Any], labels: Optional[list] = None) -> Optional[str]:
    """Why the first output is not one row of finite float class scores (matching `labels`), or None."""
    if not outputs:
        return "gives no output"
    first = np.asarray(outputs[0])
    if first.dtype.kind != "f":
        return f"gives {first.dtype} values as its first output, not float class scores"
    if first.ndim not in (1, 2) or first.ndim == 2 and first.shape[0] != 1:
        return f"gives a first output of shape {list(first.shape)}, not one row of class scores (1xN)"
    width = first.shape[-1]
    if width < 2:
        return f"gives {width} scores, but a classifier needs at least 2"
    if labels and width != len(labels):
        return f"gives {width} scores for {len(labels)} labels"
    if not np.isfinite(first).all():
        return "gives NaN or infinite scores"
    return None
