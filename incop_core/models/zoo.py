"""Model zoo: a small CNN for fast CPU runs and torchvision architectures adapted to the input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional, Union, get_args

import torch
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler, field_validator,
                      model_validator)
from torch import nn

from incop_core.foundations.errors import ConfigError
from incop_core.foundations.hashdump import NEW_SETTING
from incop_core.models.factory import build_custom
from incop_core.foundations.pathkind import FILE, not_a

ModelName = Literal["small-cnn", "resnet18", "resnet34", "resnet50", "vgg16", "mobilenet_v2", "mobilenet_v3_small",
                    "mobilenet_v3_large", "efficientnet_b0", "regnet_y_400mf"]
KNOWN_MODELS: tuple[str, ...] = get_args(ModelName)
FACTORY_PATTERN = r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$"
FactoryPath = Annotated[str, Field(pattern=FACTORY_PATTERN)]


def is_factory(name: str) -> bool:
    """A `package.module:factory` model.name, as opposed to a zoo name."""
    return name not in KNOWN_MODELS


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Model")
    name: Union[ModelName, FactoryPath] = Field(
        "small-cnn", description="Architecture: small-cnn (fast on CPU), a torchvision model adapted to the input, or "
                                 "your own 'package.module:factory', a callable returning an nn.Module.")
    weights: Optional[str] = Field(None, description="Local state-dict file to start from; it must fit the model "
                                                     "exactly (same name, width or kwargs, input and classes).")
    width: int = Field(32, ge=4, le=256, description="First-layer channels of small-cnn (later layers double).")
    kwargs: Annotated[dict[str, Any], NEW_SETTING] = Field(  # hashed only when not empty
        default_factory=dict,
        description="Keyword arguments of a 'package.module:factory' model (JSON values); it also gets "
                    "in_channels/channels, image_size/size and num_classes from the data when its signature names them "
                    "and kwargs does not.")

    @field_validator("name", mode="wrap")
    @classmethod
    def _known_or_factory(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> str:
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(f"{value!r} is neither a known model ({', '.join(KNOWN_MODELS)}) nor a "
                             "'package.module:factory' path to your own model") from None

    @model_validator(mode="after")
    def _kwargs_need_factory(self) -> "ModelConfig":
        if self.kwargs and not is_factory(self.name):
            raise ValueError(f"model.kwargs is only for a 'package.module:factory' model.name, not {self.name}")
        return self


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


def _adapt_stem_and_head(model: nn.Module, channels: int, size: int, num_classes: int) -> nn.Module:
    """MobileNet, EfficientNet, RegNet: the first conv (the stem) takes `channels`, with stride 1 on small inputs;
    the last Linear gives `num_classes`. Module names, hence state-dict keys, stay torchvision's."""
    stem_name, stem = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    head_name, head = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    stride = 1 if size < 64 else stem.stride
    new = nn.Conv2d(channels, stem.out_channels, stem.kernel_size, stride, stem.padding, bias=stem.bias is not None)
    nn.init.kaiming_normal_(new.weight, mode="fan_out")  # the init these families give their convs
    model.set_submodule(stem_name, new)
    model.set_submodule(head_name, nn.Linear(head.in_features, num_classes, bias=head.bias is not None))
    return model


def _torchvision(name: str, channels: int, size: int, num_classes: int) -> nn.Module:
    from torchvision import models

    model = getattr(models, name)(weights=None)
    if name.startswith("resnet"):
        from incop_core.models.relus import distinct_relus

        return distinct_relus(_adapt_resnet(model, channels, size, num_classes))
    if name == "vgg16":
        return _adapt_vgg(model, channels, size, num_classes)
    return _adapt_stem_and_head(model, channels, size, num_classes)


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


def _described(model: nn.Module, cfg: Optional[ModelConfig]) -> str:
    if cfg is None:
        return type(model).__name__
    if cfg.name == "small-cnn":
        return f"small-cnn of width {cfg.width}"
    return f"{cfg.name} with model.kwargs {json.dumps(cfg.kwargs)}" if cfg.kwargs else cfg.name


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
        factory = cfg is not None and is_factory(cfg.name)
        raise ConfigError(f"weights file {path} does not fit {_described(model, cfg)} on this data: {problem}; point "
                          "model.weights at weights of the same model.name, "
                          f"{'model.kwargs' if factory else 'model.width'} and data set, or leave it empty")
    bad = non_finite(state)
    if bad:
        raise ConfigError(f"weights file {path} holds NaN or infinite values in {bad} before any training; use "
                          "weights saved before training diverged, or leave model.weights empty")
    model.load_state_dict(state)


def build_model(cfg: ModelConfig, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    channels, size = input_shape[0], input_shape[1]
    if cfg.name == "small-cnn":
        model = SmallCNN(channels, size, num_classes, cfg.width)
    elif is_factory(cfg.name):
        model = build_custom(cfg.name, cfg.kwargs, input_shape, num_classes)
    else:
        model = _torchvision(cfg.name, channels, size, num_classes)
    if cfg.weights:
        load_weights(model, cfg.weights, cfg)
    return model
