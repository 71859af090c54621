"""`incop predict`: run a pulled model on images with the manifest's preprocessing (onnxruntime + numpy only).

Preprocessing: convert to the model's channels (L or RGB), resize to `size` (bilinear), multiply by
`scale` (1/255 for 8-bit pixels), subtract `mean` and divide by `std` per channel, lay out as NCHW (or NHWC).
A .npy file holds HxW, HxWxC or CxHxW pixels: integers are scaled like an image, floats are taken as [0, 1].
Before running, the spec's input size is bounded and the session's memory capped (device_checks); after, the first
output must be one row of finite float scores, one per label.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .device_checks import (MAX_RUN_BYTES, capped_session, input_problem, mib, ort_reason, out_of_memory,
                            output_problem, spec_problem)
from .errors import RegistryError
from .manifest import MANIFEST, parse_manifest
from .pull import check_runtime
from .pull_device import CURRENT


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


def check_spec(spec: dict) -> None:
    """Refuse an input spec that predict cannot turn into a model input (or only into a huge one), naming the field."""
    if not isinstance(spec, dict) or not spec.get("channels") or not spec.get("size"):
        raise RegistryError("the manifest's input spec has no channels and size; republish with --input-spec")
    problem = spec_problem(spec)
    if problem:
        field, rule = problem
        raise RegistryError(f"the manifest's input spec has an unusable {field} ({spec.get(field)!r:.60}, not "
                            f"{rule}); republish the model with a valid --input-spec")
    problem = input_problem(spec)
    if problem:
        raise RegistryError(f"the manifest's input spec {problem}; republish the model for smaller images")


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


def _npy_header(path: Path, spec: dict) -> None:
    """Refuse, from its header alone, a .npy that cannot hold the model's CxHxW pixels (before reading the data)."""
    channels, (height, width) = spec["channels"], spec["size"]
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with open(path, "rb") as handle:
            shape = readers[np.lib.format.read_magic(handle)](handle)[0]
    except (OSError, ValueError, KeyError, SyntaxError, TypeError):  # numpy's header parser raises all of these
        raise RegistryError(f"{path} is not a readable .npy array; save it with numpy.save") from None
    if math.prod(shape) != channels * height * width:
        raise RegistryError(f"{path} has shape {shape} but the model needs {height}x{width} with {channels} "
                            "channel(s); resize it or pass a PNG/JPEG")


def _npy_pixels(path: Path, spec: dict) -> np.ndarray:
    channels, size = spec["channels"], tuple(spec["size"])
    _npy_header(path, spec)
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


def normalize(pixels: np.ndarray, spec: dict) -> np.ndarray:
    """HxWxC pixels in model units as the model's one-image batch: mean and std applied, laid out per the spec."""
    mean = np.asarray(spec.get("mean", 0.0), dtype=np.float32)
    std = np.asarray(spec.get("std", 1.0), dtype=np.float32)
    image = (pixels - mean) / std
    image = image if spec.get("layout") == "NHWC" else image.transpose(2, 0, 1)
    return image[None].astype(spec.get("dtype", "float32"))


def preprocess(path: Path, spec: dict) -> np.ndarray:
    """One image as a 1xCxHxW (or 1xHxWxC) array of the model's input dtype."""
    check_spec(spec)
    return normalize(_pixels(Path(path), spec), spec)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def _session(path: Path) -> Any:
    try:
        return capped_session(path)
    except Exception as exc:  # onnxruntime's errors share no base class but Exception
        raise RegistryError(f"{path} cannot be loaded by onnxruntime ({ort_reason(exc)}); pull the model again, "
                            "or republish it if that does not help") from None


def _run(session: Any, input_name: str, x: np.ndarray) -> list:
    try:
        return session.run(None, {input_name: x})
    except Exception as exc:  # onnxruntime's errors share no base class but Exception
        if out_of_memory(exc):
            raise RegistryError(f"the model needs more than the {mib(MAX_RUN_BYTES)} of memory a device allows to "
                                "run one image; republish a model that needs less memory") from None
        raise RegistryError(f"the model rejects the {x.dtype} input of shape {list(x.shape)} built from its "
                            f"manifest's input spec ({ort_reason(exc)}); republish it with a matching --input-spec") \
            from None


def _scores(outputs: list, labels: list, image: Path) -> np.ndarray:
    problem = output_problem(outputs, labels)
    if problem:
        raise RegistryError(f"on {image} the model {problem}; republish it as a classifier with one row of finite "
                            "float scores and one label per score (or none)")
    return np.asarray(outputs[0], dtype=np.float64).reshape(-1)


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
        outputs = _run(session, input_name, preprocess(Path(image), spec))
        scores = _softmax(_scores(outputs, labels, Path(image)))
        top = [(int(i), float(scores[i])) for i in np.argsort(-scores)[:top_k]]
        label = labels[top[0][0]] if top[0][0] < len(labels) else None
        results.append({"image": str(image), "class": top[0][0], "score": top[0][1], "label": label, "top": top})
    return results
