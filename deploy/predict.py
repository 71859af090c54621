"""`incop predict`: run a pulled model on images with the manifest's preprocessing (onnxruntime + numpy only).

Preprocessing: convert to the model's channels (L or RGB), resize to `size` (bilinear), multiply by
`scale` (1/255 for 8-bit pixels), subtract `mean` and divide by `std` per channel, lay out as NCHW.
A .npy file holds HxW, HxWxC or CxHxW pixels: integers are scaled like an image, floats are taken as [0, 1].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .pull import check_runtime
from .pull_device import CURRENT
from .registry_errors import RegistryError
from .registry_manifest import MANIFEST, parse_manifest


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


def _pixels(path: Path, spec: dict) -> np.ndarray:
    """The image as float32 HxWxC in model units before mean/std."""
    channels, (height, width) = spec["channels"], spec["size"]
    if path.suffix.lower() == ".npy":
        return _npy_pixels(path, spec)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32)
    except (OSError, UnidentifiedImageError):
        raise RegistryError(f"{path} is not a readable image; pass PNG, JPEG or .npy files") from None
    pixels = pixels.reshape(height, width, channels)
    return pixels * float(spec.get("scale", 1 / 255))


def _npy_pixels(path: Path, spec: dict) -> np.ndarray:
    channels, size = spec["channels"], tuple(spec["size"])
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        raise RegistryError(f"{path} is not a readable .npy array; save it with numpy.save") from None
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
    if not spec.get("channels") or not spec.get("size"):
        raise RegistryError("the manifest's input spec has no channels and size; republish with --input-spec")
    pixels = _pixels(Path(path), spec)
    mean = np.asarray(spec.get("mean", 0.0), dtype=np.float32)
    std = np.asarray(spec.get("std", 1.0), dtype=np.float32)
    chw = ((pixels - mean) / std).transpose(2, 0, 1)
    return chw[None].astype(spec.get("dtype", "float32"))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def predict(model: Path, images: Sequence[Path], top_k: int = 1) -> list[dict[str, Any]]:
    """Top-k classes per image: [{"image", "class", "score", "label", "top": [[class, score], ...]}]."""
    import onnxruntime as ort

    directory = model_dir(model)
    manifest = load_manifest(directory)
    check_runtime(manifest)
    spec = manifest["input_spec"]
    session = ort.InferenceSession(str(directory / manifest["model_file"]), providers=["CPUExecutionProvider"])
    input_name = spec.get("input_name") or session.get_inputs()[0].name
    labels = spec.get("labels") or []
    results = []
    for image in images:
        if not Path(image).is_file():
            raise RegistryError(f"image {image} does not exist; check the path")
        logits = np.asarray(session.run(None, {input_name: preprocess(Path(image), spec)})[0]).reshape(-1)
        scores = _softmax(logits.astype(np.float64))
        top = [(int(i), float(scores[i])) for i in np.argsort(-scores)[:top_k]]
        label = labels[top[0][0]] if top[0][0] < len(labels) else None
        results.append({"image": str(image), "class": top[0][0], "score": top[0][1], "label": label, "top": top})
    return results
