"""Plug-in registries: explicit names, one config model per plug-in, duplicates refused."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from pydantic import BaseModel

from incop_core.foundations.errors import ConfigError

T = TypeVar("T")
# A plug-in config's `kind`: a const the form shows read-only, since the tab chosen above sets it
KIND_FIELD = {"readOnly": True, "description": "Set by the tab chosen above."}


class Registry(Generic[T]):
    """Maps a name (the config's `kind`) to its config model and the class it builds."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, tuple[type[BaseModel], Callable[..., T]]] = {}

    def register(self, name: str, config: type[BaseModel]) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def add(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._entries[name] = (config, factory)
            return factory
        return add

    def names(self) -> list[str]:
        return sorted(self._entries)

    def configs(self) -> list[type[BaseModel]]:
        return [self._entries[name][0] for name in self.names()]

    def config_for(self, name: str) -> type[BaseModel]:
        return self._lookup(name)[0]

    def build(self, config: BaseModel, *args, **kwargs) -> T:
        return self._lookup(config.kind)[1](config, *args, **kwargs)

    def _lookup(self, name: str) -> tuple[type[BaseModel], Callable[..., T]]:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.what} {name!r}; choose one of: {', '.join(self.names())}")
        return self._entries[name]
