"""A JSON architecture spec of a compacted model (channels per layer), and the rebuild from it.

The spec plus a plain state dict (loaded with weights_only=True) give the model back without
pickling any Python object: build the run's architecture, resize every layer the spec names,
then load the weights strictly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from incop_core.foundations.fileio import read_json, save_torch_atomic, write_json_atomic
from incop_core.models.zoo import ModelConfig, build_model

from ..errors import DeployError
from .depth import ConstantBranch
from .layers import add_bias_map, has_bias_map

FORMAT = 1


def _map_shape(module: nn.Module) -> list[int] | None:
    return list(module.bias_map.shape) if has_bias_map(module) else None


def _layer_entry(module: nn.Module) -> dict | None:
    if isinstance(module, nn.Conv2d):
        return {"type": "Conv2d", "in": module.in_channels, "out": module.out_channels, "groups": module.groups,
                "bias": module.bias is not None,
                "bias_map": _map_shape(module)}
    if isinstance(module, nn.Linear):
        return {"type": "Linear", "in": module.in_features, "out": module.out_features, "bias": module.bias is not None}
    if isinstance(module, nn.BatchNorm2d):
        return {"type": "BatchNorm2d", "out": module.num_features, "bias_map": _map_shape(module)}
    return None


def architecture_spec(model: nn.Module, base: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> dict:
    """Channels (and added biases / bias maps) of every Conv2d, Linear and BatchNorm2d, by module name."""
    layers = {name: entry for name, module in model.named_modules() if (entry := _layer_entry(module))}
    constant = {name: int(m.shift.shape[1]) for name, m in model.named_modules() if isinstance(m, ConstantBranch)}
    return {"format": FORMAT, "model": base.model_dump(mode="json", exclude={"weights"}),
            "input_shape": list(input_shape), "num_classes": num_classes, "layers": layers,
            "constant_branches": constant}


def _resized(old: nn.Module, entry: dict) -> nn.Module:
    if entry["type"] == "Linear":
        return nn.Linear(entry["in"], entry["out"], entry["bias"])
    if entry["type"] == "Conv2d":
        new = nn.Conv2d(entry["in"], entry["out"], old.kernel_size, old.stride, old.padding, old.dilation,
                        entry["groups"], entry["bias"], old.padding_mode)
    else:
        new = nn.BatchNorm2d(entry["out"], old.eps, old.momentum, old.affine, old.track_running_stats)
    if entry.get("bias_map"):
        add_bias_map(new, torch.zeros(entry["bias_map"]))
    return new


def rebuild(spec: dict, state: dict) -> nn.Module:
    """The model `spec` describes, with `state` loaded strictly, in eval mode."""
    if spec.get("format") != FORMAT:
        raise DeployError(f"architecture spec format {spec.get('format')!r} is not {FORMAT}; delete the export folder "
                          "and run `incop export` again")
    model = build_model(ModelConfig(**spec["model"]), tuple(spec["input_shape"]), spec["num_classes"])
    for name, channels in spec.get("constant_branches", {}).items():  # residual blocks reduced to a constant
        block = model.get_submodule(name)
        parent, _, attr = name.rpartition(".")
        shortcut = block.downsample if block.downsample is not None else nn.Identity()
        setattr(model.get_submodule(parent) if parent else model, attr, ConstantBranch(shortcut, torch.zeros(channels)))
    modules = dict(model.named_modules())
    for name, entry in spec["layers"].items():
        if name not in modules:
            raise DeployError(f"architecture spec names layer {name}, which {spec['model']['name']} lacks; delete the "
                              "export folder and run `incop export` again")
        parent, _, attr = name.rpartition(".")
        setattr(modules[parent] if parent else model, attr, _resized(modules[name], entry))
    model.load_state_dict(state, strict=True)
    return model.eval()


def save_compacted(model: nn.Module, spec: dict, weights: Path, spec_path: Path) -> None:
    save_torch_atomic(weights, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    write_json_atomic(spec_path, spec)


def load_compacted(weights: Path, spec_path: Path) -> nn.Module:
    """Rebuild a saved compacted model from its spec and plain state dict (no pickles)."""
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        spec = read_json(spec_path)
    except Exception as exc:
        raise DeployError(f"compacted model {weights} or its spec is unreadable ({type(exc).__name__}); "
                          f"delete the export folder and delete the export folder and run `incop export` "
                          "again") from None
    return rebuild(spec, state)
