"""Settings added after runs were already named by their config hash.

A field annotated with `NEW_SETTING` is left out of the hash, and only the hash, while it holds its default. Run
directories and dense caches made before the field existed keep their names. Every dump still holds the field: the
run's config.json, the Prefect form's defaults, a served deployment's parameters. A dump laid over another config
(a partial run from the UI, `--config`) then keeps the value it had, instead of taking the other config's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class _NewSetting:
    def __repr__(self) -> str:
        return "NEW_SETTING"


NEW_SETTING = _NewSetting()


def hashed_dump(model: BaseModel, **dump: Any) -> dict[str, Any]:
    """`model.model_dump(mode="json", **dump)` without the NEW_SETTING fields that hold their defaults."""
    dumped = model.model_dump(mode="json", **dump)
    _drop_new_defaults(model, dumped)
    return dumped


def _drop_new_defaults(model: BaseModel, dumped: dict[str, Any]) -> None:
    for name, field in type(model).model_fields.items():
        if name not in dumped:
            continue
        value = getattr(model, name)
        if NEW_SETTING in field.metadata and value == field.get_default(call_default_factory=True):
            del dumped[name]
        elif isinstance(value, BaseModel) and isinstance(dumped[name], dict):
            _drop_new_defaults(value, dumped[name])
