"""Registries: explicit names, duplicates refused, unknown names answered with the known ones; plug-ins by kind."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from pydantic import BaseModel

from incop_core.foundations.errors import ConfigError

T = TypeVar("T")
V = TypeVar("V")
# A plug-in config's `kind`: a const the form shows read-only, since the tab chosen above sets it
KIND_FIELD = {"readOnly": True, "description": "Set by the tab chosen above."}


class Names(Generic[V]):
    """Explicit names for values: a duplicate is an error, an unknown name a sentence listing the known ones."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, V] = {}

    def add(self, name: str, value: V) -> None:
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._entries[name] = value

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> V:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.what} {name!r}; choose one of: {', '.join(self.names())}")
        return self._entries[name]


class Registry(Names[tuple[type[BaseModel], Callable[..., T]]]):
    """Plug-ins: maps a name (the config's `kind`) to its config model and the class it builds."""

    def register(self, name: str, config: type[BaseModel]) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def add(factory: Callable[..., T]) -> Callable[..., T]:
            self.add(name, (config, factory))
            return factory
        return add

    def configs(self) -> list[type[BaseModel]]:
        return [self.get(name)[0] for name in self.names()]

    def config_for(self, name: str) -> type[BaseModel]:
        return self.get(name)[0]

    def build(self, config: BaseModel, *args, **kwargs) -> T:
        return self.get(config.kind)[1](config, *args, **kwargs)
