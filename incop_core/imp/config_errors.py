"""How a bad run config reads: one sentence naming the setting, what it should be and what it got, from pydantic's
errors (a plug-in's own errors are worded by `plugin_problem`, the rest by `describe`)."""

from __future__ import annotations

from pydantic import ValidationError

from incop_core.criteria import CRITERIA
from incop_core.pruning.schedules import SCHEDULES

PLUGIN_ERROR = "plugin_setting"


def plugin_problem(what: str, exc: ValidationError) -> tuple[str, str]:
    """The setting (dotted, "" for the whole section) and one sentence for a schedule or criterion error."""
    first = exc.errors()[0]
    if first["type"] == "union_tag_invalid":
        names = (SCHEDULES if what == "schedule" else CRITERIA).names()
        return "kind", f"unknown {what} kind {first['ctx']['tag']!r}; choose one of: {', '.join(names)}"
    if first["type"] == "union_tag_not_found" or len(first["loc"]) == 0:
        return "", f"{what} must be a section of settings with a kind (got {first.get('input')!r})"
    kind, *inner = first["loc"]
    setting = _setting(inner)
    same = [e for e in exc.errors() if e["loc"][:1] == (kind,) and _setting(e["loc"][1:]) == setting]
    says = " or ".join(dict.fromkeys(_short(e["msg"]) for e in same)).replace(" or should be ", " or ")
    if first["type"] == "value_error" or not setting:
        return setting, f"{what} {kind}: {says}"
    return setting, f"{setting} {says} (got {first.get('input')!r}; {what} kind {kind})"


def _setting(loc) -> str:
    """The setting an error is about: plug-in configs are flat, so the first name (the rest are pydantic's labels of
    union branches, such as constrained-float or literal['auto'])."""
    return str(loc[0]) if loc else ""


def _short(msg: str) -> str:
    return msg.removeprefix("Value error, ").replace("Input should be", "should be").replace(
        "Extra inputs are not permitted", "is not a setting of this kind")


def describe(exc: ValidationError) -> str:
    """One sentence for the first problem pydantic found."""
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("function-", "tagged-union")))
    if error["type"] == PLUGIN_ERROR:
        return f"bad config value at {where}: {error['ctx']['message']}; fix it in the config file or flags"
    message = error["msg"].removeprefix("Value error, ")
    if not where and error["type"] == "value_error":
        return f"{message}; fix it in the config file or flags"
    got = "" if error["type"] == "value_error" else f" (got {error.get('input')!r})"
    return f"bad config value at {where or 'top level'}: {message}{got}; fix it in the config file or flags"
