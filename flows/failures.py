"""A user's error ends a stage and its run with a Prefect state whose message is the sentence naming the field and
the fix (shown on the run's page in the UI), not with a traceback in the log. Anything else is a bug and keeps its
traceback. The error travels in the state, so a direct call (`incop pipeline`) still raises it for the CLI's guard.
A Prefect task that ends in a returned Failed state hands the flow that state instead of raising, so stages are
`Stage` tasks (made with `@stage`): their call raises the error again, which stops the flow at the first failed
stage with the same sentence as its own state message."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from prefect import Task
from prefect.client.schemas.objects import State
from prefect.states import Failed

from incop_core.foundations.errors import IncopError


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


def settled(value: Any) -> Any:
    """A stage's value in the flow. A stage that met a user's error ended Failed with its sentence and handed the flow
    that state instead of a value; its error stops the flow here (and becomes the flow's own state message)."""
    if isinstance(value, State):
        error = value.result(raise_on_failure=False)
        if isinstance(error, IncopError):
            raise error
        raise RuntimeError(f"a stage ended {value.name}: {value.message}")
    return value


def retry_unless_user_error(task: Any, task_run: Any, state: State) -> bool:
    """Prefect's retry condition: retry what may pass next time, never the user's error (it fails the same way)."""
    return not isinstance(state.result(raise_on_failure=False), IncopError)


class Stage(Task):
    """A pipeline stage: a task whose call in a flow gives its value, or raises the user's error it failed with."""

    def __call__(self, *args: Any, return_state: bool = False, **kwargs: Any) -> Any:
        value = super().__call__(*args, return_state=return_state, **kwargs)
        return value if return_state else settled(value)


def stage(**options: Any) -> Callable[[Callable[..., Any]], Stage]:
    """`@task(**options)` for a stage: user errors become its Failed state, are not retried, and stop the flow."""
    options.setdefault("log_prints", None)  # as `@task` does: the flow's log_prints decides (Task's own default is off)
    if options.get("retries"):
        options.setdefault("retry_condition_fn", retry_unless_user_error)
    return lambda fn: Stage(fn=user_errors(fn), **options)
