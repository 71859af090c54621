"""incop core: Information Consistent Pruning as a plain library (no Prefect here).

`from incop_core import validate, run_pruning, load_records` is the library's entry; they load on first use, so the
device side, which imports only `incop_core.foundations`, never pulls in torch."""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"
ENTRY = {"validate": "incop_core.imp.config", "run_pruning": "incop_core.imp.runner",
         "load_records": "incop_core.imp.rundir"}
__all__ = sorted(ENTRY)


def __getattr__(name: str) -> Any:
    if name in ENTRY:
        return getattr(import_module(ENTRY[name]), name)
    raise AttributeError(f"module 'incop_core' has no attribute {name!r}")
