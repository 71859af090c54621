"""The user's own model: `model.name` "package.module:factory" names a callable that returns an nn.Module.

Calling convention: `factory(**model.kwargs)`, plus, by keyword, each of `in_channels`/`channels` (the data's
channels), `image_size`/`size` (its height) and `num_classes` that the factory's signature names as a parameter
and model.kwargs does not set (model.kwargs wins; a bare **kwargs is offered nothing). The model must then run on
zeros of shape (2, channels, height, width) and give (2, num_classes). Every failure is one ConfigError sentence.
"""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any, Callable, Mapping

import torch
from torch import nn

from incop_core.foundations.errors import ConfigError

INPUT_ARGUMENTS = ("in_channels", "channels", "image_size", "size", "num_classes")
MODEL_MODULES_ENV = "INCOP_MODEL_MODULES"  # packages the pipeline (UI, schedules) may import a factory from


def factory_allowed(path: str) -> bool:
    """Is the factory's module listed (itself or a package above it) in the worker's INCOP_MODEL_MODULES? A name typed
    into the Prefect UI must not import and call arbitrary code (`subprocess:run`) on the worker."""
    module = path.partition(":")[0]
    allowed = [m.strip() for m in os.environ.get(MODEL_MODULES_ENV, "").split(",") if m.strip()]
    return any(module == m or module.startswith(m + ".") for m in allowed)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def _resolve(path: str) -> Callable[..., Any]:
    """The callable a `package.module:factory` path names."""
    module_name, _, attr = path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"cannot import module {module_name} of model.name {path} ({_first_line(exc)}); it must be "
                          "importable on the worker's PYTHONPATH: install its package or add its folder to "
                          "PYTHONPATH") from exc
    for part in attr.split("."):
        if not hasattr(found, part):
            raise ConfigError(f"module {module_name} has no attribute {attr}; point model.name at a function or class "
                              f"defined there ({module_name}:NAME)")
        found = getattr(found, part)
    if not callable(found):
        raise ConfigError(f"{path} is an object of type {type(found).__name__}, not callable; point model.name at a "
                          "function or class that returns an nn.Module")
    return found


def _input_arguments(factory: Callable[..., Any], input_shape: tuple[int, int, int], num_classes: int) -> dict:
    """in_channels/channels, image_size/size and num_classes, for those the factory's signature names."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature: it gets only model.kwargs
        return {}
    values = dict(zip(INPUT_ARGUMENTS, (input_shape[0], input_shape[0], input_shape[1], input_shape[1], num_classes)))
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {k: v for k, v in values.items() if k in params and params[k].kind in named}


def _check_runs(model: nn.Module, path: str, input_shape: tuple[int, int, int], num_classes: int) -> None:
    """One forward pass on zeros of the data's shape (eval mode, no grad) must give (2, num_classes)."""
    shape, was = (2, *input_shape), model.training
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(shape))
    except Exception as exc:
        raise ConfigError(f"model {path} cannot run on the data's input of shape {shape} ({_first_line(exc)}); make "
                          f"its factory build it for {input_shape[0]} input channels and "
                          f"{input_shape[1]}x{input_shape[2]} images") from exc
    finally:
        model.train(was)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
    if got != (2, num_classes):
        raise ConfigError(f"model {path} gives {got} on the data's input of shape {shape}, not (2, {num_classes}); "
                          f"make it return one tensor of {num_classes} class scores per image (take num_classes in its "
                          "factory)")


def build_custom(path: str, kwargs: Mapping[str, Any], input_shape: tuple[int, int, int],
                 num_classes: int) -> nn.Module:
    """factory(**kwargs), plus the input arguments its signature names and kwargs does not; checked by one forward
    pass."""
    factory = _resolve(path)
    arguments = {**_input_arguments(factory, input_shape, num_classes), **kwargs}
    try:
        model = factory(**arguments)
    except Exception as exc:
        raise ConfigError(f"model factory {path} raised {_first_line(exc)} when called with "
                          f"{', '.join(arguments) or 'no arguments'}; fix the factory or model.kwargs") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model factory {path} returned an object of type {type(model).__name__}, not a torch "
                          "nn.Module; make it return the model")
    _check_runs(model, path, input_shape, num_classes)
    return model
