"""A user's error ends a stage and its run with a Prefect state whose message is the sentence naming the field and
the fix (shown on the run's page in the UI), not with a traceback in the log. Anything else is a bug and keeps its
traceback. The error travels in the state, so a direct call (`incop pipeline`) still raises it for the CLI's guard."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from prefect.states import Failed

from incop_core.errors import IncopError


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a task or flow body: an IncopError becomes a Failed state carrying its sentence."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except IncopError as exc:
            print(f"error: {exc}")
            return Failed(message=str(exc), data=exc)
    wrapper.__signature__ = inspect.signature(fn, eval_str=True)  # resolved where `fn` lives, for Prefect's schema
    return wrapper
