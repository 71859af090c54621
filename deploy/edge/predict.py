"""`incop predict`: run a pulled model on images with the manifest's preprocessing (onnxruntime + numpy only).

Preprocessing: convert to the model's channels (L or RGB), resize to `size` (bilinear), multiply by
`scale` (1/255 for 8-bit pixels), subtract `mean` and divide by `std` per channel, lay out as NCHW.
A .npy file holds HxW, HxWxC or CxHxW pixels: integers are scaled like an image, floats are taken as [0, 1].
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import RegistryError
from .manifest import MANIFEST, parse_manifest
from .pull import check_runtime
from .pull_device import CURRENT


# onnxruntime's error-code prefix, "Load model from PATH failed:" and C++ source locations
ORT_NOISE = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : |Load model from .* failed:"
                       r"|\S+\.(?:cc|h):\d+ \S+?\(.*?\) ")


def model_dir(model: Path) -> Path:
    """A device directory (use its `current`) or a version directory holding manifest.json."""
    model = Path(model)
    for candidate in (model / CURRENT, model):
        if (candidate / MANIFEST).is_file():
            return candidate
    raise RegistryError(f"{model} holds no pulled model; pull one with `incop pull --dest {model}` first")


def load_manifest(directory: Path) -> dict:
    data = (directory / MANIFEST).read_bytes()
    try:
        head = json.loads(data)
    except ValueError:
        head = {}
    return parse_manifest(data, str(head.get("name")), str(head.get("version")))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _per_channel(value: Any, channels: int, nonzero: bool = False) -> bool:
    values = value if isinstance(value, list) and len(value) in (1, channels) else [value]
    return all(_number(v) and (v != 0 or not nonzero) for v in values)


def _dtype_ok(name: Any) -> bool:
    try:
        return np.dtype(name).kind in "fiu"
    except TypeError:
        return False


def check_spec(spec: dict) -> None:
    """Refuse an input spec that predict cannot turn into a model input, naming the field."""
    if not isinstance(spec, dict) or not spec.get("channels") or not spec.get("size"):
        raise RegistryError("the manifest's input spec has no channels and size; republish with --input-spec")
    channels, size = spec["channels"], spec["size"]
    checks = {"channels": isinstance(channels, int) and not isinstance(channels, bool) and 0 < channels <= 4096,
              "size": isinstance(size, list) and len(size) == 2 and all(
                  isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 65536 for v in size),
              "dtype": _dtype_ok(spec.get("dtype", "float32")), "scale": _number(spec.get("scale", 1 / 255))}
    checks["mean"] = checks["channels"] and _per_channel(spec.get("mean", 0.0), channels)
    checks["std"] = checks["channels"] and _per_channel(spec.get("std", 1.0), channels, nonzero=True)
    for field, ok in checks.items():
        if not ok:
            value = repr(spec.get(field))[:60]
            raise RegistryError(f"the manifest's input spec has an unusable {field} ({value}); republish the "
                                "model with a valid --input-spec")


def _pixels(path: Path, spec: dict) -> np.ndarray:
    """The image as float32 HxWxC in model units before mean/std."""
    channels, (height, width) = spec["channels"], spec["size"]
    if path.suffix.lower() == ".npy":
        return _npy_pixels(path, spec)
    if channels not in (1, 3):
        raise RegistryError(f"the model needs {channels} input channels, which {path} as an image cannot give; "
                            "pass .npy arrays instead")
    pixels = _decode(path, "L" if channels == 1 else "RGB", (width, height))
    pixels = pixels.reshape(height, width, channels)
    return pixels * float(spec.get("scale", 1 / 255))


def _decode(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """Pixels of an image file converted to `mode` and resized, or one sentence naming the file."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return np.asarray(image.convert(mode).resize(size, Image.BILINEAR), dtype=np.float32)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RegistryError(f"{path} claims more than {Image.MAX_IMAGE_PIXELS} pixels (a possible decompression "
                            "bomb); resize the image or pass a .npy array") from None
    except (OSError, ValueError, EOFError, SyntaxError):  # UnidentifiedImageError is an OSError
        raise RegistryError(f"{path} is not a readable image; pass PNG, JPEG or .npy files") from None


def _npy_pixels(path: Path, spec: dict) -> np.ndarray:
    channels, size = spec["channels"], tuple(spec["size"])
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        raise RegistryError(f"{path} is not a readable .npy array; save it with numpy.save") from None
    if array.dtype.kind not in "biuf":
        raise RegistryError(f"{path} holds {array.dtype} values, not numbers; save the pixels as integers or floats")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise RegistryError(f"{path} contains NaN or infinite values; pass finite pixel values")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim == 3 and array.shape[0] == channels and array.shape[-1] != channels:
        array = array.transpose(1, 2, 0)
    if array.ndim != 3 or array.shape[:2] != size or array.shape[2] != channels:
        raise RegistryError(f"{path} has shape {array.shape} but the model needs {size[0]}x{size[1]} with "
                            f"{channels} channel(s); resize it or pass a PNG/JPEG")
    scale = float(spec.get("scale", 1 / 255)) if np.issubdtype(array.dtype, np.integer) else 1.0
    return array.astype(np.float32) * scale


def preprocess(path: Path, spec: dict) -> np.ndarray:
    """One image as a 1xCxHxW array of the model's input dtype."""
    check_spec(spec)
    pixels = _pixels(Path(path), spec)
    mean = np.asarray(spec.get("mean", 0.0), dtype=np.float32)
    std = np.asarray(spec.get("std", 1.0), dtype=np.float32)
    chw = ((pixels - mean) / std).transpose(2, 0, 1)
    return chw[None].astype(spec.get("dtype", "float32"))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def _reason(exc: Exception) -> str:
    """onnxruntime's message: its first line without ORT_NOISE or the final period."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ORT_NOISE.sub("", text).strip().rstrip(".")[:200] or type(exc).__name__


def _session(path: Path) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors share no base class but Exception
        raise RegistryError(f"{path} cannot be loaded by onnxruntime ({_reason(exc)}); pull the model again, "
                           "or republish it if that does not help") from None


def _run(session: Any, input_name: str, x: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(session.run(None, {input_name: x})[0]).reshape(-1)
    except Exception as exc:  # onnxruntime's errors share no base class but Exception
        raise RegistryError(f"the model rejects the {x.dtype} input of shape {list(x.shape)} built from its "
                            f"manifest's input spec ({_reason(exc)}); republish it with a matching --input-spec") \
            from None


def predict(model: Path, images: Sequence[Path], top_k: int = 1) -> list[dict[str, Any]]:
    """Top-k classes per image: [{"image", "class", "score", "label", "top": [[class, score], ...]}]."""
    directory = model_dir(model)
    manifest = load_manifest(directory)
    check_runtime(manifest)
    spec = manifest["input_spec"]
    check_spec(spec)
    session = _session(directory / manifest["model_file"])
    input_name = spec.get("input_name") or session.get_inputs()[0].name
    labels = spec.get("labels") or []
    results = []
    for image in images:
        if not Path(image).is_file():
            raise RegistryError(f"image {image} does not exist; check the path")
        logits = _run(session, input_name, preprocess(Path(image), spec))
        scores = _softmax(logits.astype(np.float64))
        top = [(int(i), float(scores[i])) for i in np.argsort(-scores)[:top_k]]
        label = labels[top[0][0]] if top[0][0] < len(labels) else None
        results.append({"image": str(image), "class": top[0][0], "score": top[0][1], "label": label, "top": top})
    return results
