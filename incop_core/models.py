"""Model zoo: a small CNN for fast CPU runs and torchvision architectures adapted to the input."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Mapping, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .errors import ConfigError
from .pathkind import FILE, not_a

ModelName = Literal["small-cnn", "resnet18", "resnet50", "vgg16"]


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ModelName = Field("small-cnn", description="Architecture: small-cnn (fast on CPU) or a torchvision model.")
    weights: Optional[str] = Field(None, description="Local state-dict file to start from; it must fit the model exactly "
                                                     "(same name, width, input and classes).")
    width: int = Field(32, ge=4, le=256, description="First-layer channels of small-cnn (later layers double).")


class SmallCNN(nn.Module):
    """Two conv blocks and a two-layer head sized to the input; every ReLU is its own module."""

    def __init__(self, channels: int, size: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        flat = 2 * w * (size // 4) ** 2
        self.classifier = nn.Sequential(nn.Linear(flat, 4 * w), nn.ReLU(), nn.Linear(4 * w, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _adapt_resnet(model: nn.Module, channels: int, size: int, num_classes: int) -> nn.Module:
    if size < 64:  # small inputs: a 3x3 stem without the max pool keeps spatial detail
        model.conv1 = nn.Conv2d(channels, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, 7, 2, 3, bias=False)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def _adapt_vgg(model: nn.Module, channels: int, size: int, num_classes: int) -> nn.Module:
    layers = list(model.features)
    if channels != 3:
        layers[0] = nn.Conv2d(channels, 64, 3, padding=1)
    pools = [i for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]
    while pools and size // (2 ** len(pools)) < 1:  # drop late pools that would shrink the map to nothing
        del layers[pools.pop()]
    model.features = nn.Sequential(*layers)
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, num_classes))
    return model


def _torchvision(name: str, channels: int, size: int, num_classes: int) -> nn.Module:
    from torchvision import models

    if name.startswith("resnet"):
        from .relus import distinct_relus

        return distinct_relus(_adapt_resnet(getattr(models, name)(weights=None), channels, size, num_classes))
    return _adapt_vgg(models.vgg16(weights=None), channels, size, num_classes)


def read_state(path: Path | str) -> object:
    """torch.load of a state-dict file on the CPU (tensors only); a missing file raises FileNotFoundError."""
    return torch.load(path, map_location="cpu", weights_only=True)


def state_mismatch(model: nn.Module, state: object) -> Optional[str]:
    """What keeps `state` from loading strictly into `model`: its first mismatched key (model order), or None."""
    if not isinstance(state, Mapping):
        return f"it holds a {type(state).__name__}, not a state dict"
    own = model.state_dict()
    for key, tensor in own.items():
        value = state.get(key)
        if not isinstance(value, torch.Tensor):
            return f"{key} is missing from it"
        if tuple(value.shape) != tuple(tensor.shape):
            return f"{key} has shape {tuple(value.shape)} there but {tuple(tensor.shape)} in the model"
    extra = [key for key in state if key not in own]
    return f"{extra[0]} is not a layer of the model" if extra else None


def non_finite(state: Mapping) -> Optional[str]:
    """The first floating-point tensor of `state` holding NaN or infinity, or None."""
    return next((k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
                 and not bool(torch.isfinite(v).all())), None)


def load_weights(model: nn.Module, path: str, cfg: Optional[ModelConfig] = None) -> None:
    """Load a local state dict strictly: every key present, no extra one, every shape equal, every value finite."""
    problem = not_a(Path(path), FILE)
    if problem and problem != "does not exist":  # a FIFO would block torch.load forever
        raise ConfigError(f"weights file {path} {problem}; point model.weights at a file saved with torch.save")
    try:
        state = read_state(path)
    except FileNotFoundError as exc:
        raise ConfigError(f"weights file {path} does not exist; fix model.weights or leave it empty") from exc
    except Exception as exc:
        raise ConfigError(f"weights file {path} is not a readable PyTorch state dict; "
                          "re-save it with torch.save(model.state_dict())") from exc
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    problem = state_mismatch(model, state)
    if problem:
        what = type(model).__name__ if cfg is None else f"small-cnn of width {cfg.width}" if cfg.name == "small-cnn" else cfg.name
        raise ConfigError(f"weights file {path} does not fit {what} on this data: {problem}; point model.weights at "
                          "weights of the same model.name, model.width and data set, or leave it empty")
    bad = non_finite(state)
    if bad:
        raise ConfigError(f"weights file {path} holds NaN or infinite values in {bad} before any training; use "
                          "weights saved before training diverged, or leave model.weights empty")
    model.load_state_dict(state)


def build_model(cfg: ModelConfig, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    channels, size = input_shape[0], input_shape[1]
    if cfg.name == "small-cnn":
        model = SmallCNN(channels, size, num_classes, cfg.width)
    else:
        model = _torchvision(cfg.name, channels, size, num_classes)
    if cfg.weights:
        load_weights(model, cfg.weights, cfg)
    return model
