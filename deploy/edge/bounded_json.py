"""JSON that may come from anyone (a registry, a mirror, a device directory other users can write), parsed within
bounds: nesting depth, integer length and non-finite numbers are refused before Python's parser can recurse, build a
huge integer or hand back NaN, so a hostile file costs no more than its (already limited) size. Standard library only.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_JSON_DEPTH, MAX_INT_DIGITS = 32, 24  # what a registry file may nest and how long its integers may be


class _Refused(ValueError):
    """A JSON value outside what a registry file may hold."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text)} digits")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Refused(f"the number {text[:24]} overflows")
    return value


def _refuse_constant(text: str) -> None:
    raise _Refused(f"the non-JSON constant {text}")


def _depth(data: bytes) -> int:
    """How deep arrays and objects nest in `data` (brackets inside strings do not count)."""
    brackets = re.sub(rb"[^\[\]{}]", b"", re.sub(rb'"(?:[^"\\]|\\.)*"', b"", data))
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def load_json(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON that may come from anyone: nesting, integer length and non-finite numbers are bounded, so a
    hostile file costs no more than its size. Raises ValueError (a one-line reason) for anything else."""
    if _depth(data) > max_depth:
        raise ValueError(f"it nests deeper than {max_depth} levels")
    try:
        return json.loads(data.decode(), parse_int=_bounded_int, parse_float=_finite_float,
                          parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text") from None
    except _Refused as exc:
        raise ValueError(f"it holds {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"it is not valid JSON ({exc.msg} at line {exc.lineno})") from None
