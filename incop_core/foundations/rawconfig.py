"""Guards on raw config input, around pydantic: what a config file path really is, how big and how deep the settings
are, and booleans given where numbers belong.

pydantic's lax mode reads `true` as 1 (`prune.iterations: true` would run one iteration): a boolean where the
validated value is a number is refused. No setting nests more than a few levels (prune.follow is the deepest, 3), so
settings deeper than MAX_DEPTH are refused before pydantic sees them, and a file too deep for Python's parsers is one
sentence rather than a RecursionError.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel

from incop_core.foundations.errors import ConfigError
from incop_core.foundations.pathkind import FILE, not_a

MAX_CONFIG_BYTES = 16 * 2**20
MAX_DEPTH = 32


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a JSON or TOML config file into a plain dict."""
    path = Path(path)
    kind = "TOML" if path.suffix == ".toml" else "JSON"
    problem = not_a(path, FILE)
    if problem:
        fix = ("check the path given to --config" if problem == "does not exist"
               else "pass a JSON or TOML file to --config")
        raise ConfigError(f"config file {path} {problem}; {fix}")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is {path.stat().st_size // 2**20} MiB, more than the "
                          f"{MAX_CONFIG_BYTES // 2**20} MiB a config may hold; pass the run's config file to --config")
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {kind} ({exc}); fix its syntax") from None
    except RecursionError:
        raise ConfigError(f"config file {path} nests too deeply to parse (no setting is more than {MAX_DEPTH} "
                          "levels deep); fix the file") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold an object of settings at the top level")
    return raw


def _children(node: Any):
    if isinstance(node, dict):
        return node.items()
    return enumerate(node) if isinstance(node, (list, tuple)) else ()


def too_deep(raw: Any, limit: int = MAX_DEPTH) -> Optional[str]:
    """Where (dotted, first levels only) `raw` nests deeper than `limit` levels; None when it does not."""
    stack = [(raw, (), 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > limit:
            return ".".join(where[:3]) + "..."
        stack.extend((child, (*where, str(key)), depth + 1) for key, child in _children(node))
    return None


def _field(validated: Any, key: Any) -> Any:
    if isinstance(validated, BaseModel):
        return getattr(validated, str(key), None)
    if isinstance(validated, dict):
        return validated.get(key)
    if isinstance(validated, (list, tuple)) and isinstance(key, int) and key < len(validated):
        return validated[key]
    return None


def boolean_number(raw: Any, validated: Any, where: str = "") -> Optional[str]:
    """The dotted setting where `raw` holds a boolean but the validated config a number; None when there is none."""
    if isinstance(raw, bool):
        return where if isinstance(validated, (int, float)) and not isinstance(validated, bool) else None
    for key, child in _children(raw):
        found = boolean_number(child, _field(validated, key), f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set raw['a']['b'] = value for dotted 'a.b', creating levels as needed."""
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {dotted}: {key} is a single value, not a section; use --set {key}=VALUE")
        node = child
    node[leaf] = value


def parse_override(item: str, example: str) -> tuple[str, Any]:
    """One `--set KEY=VALUE` of either CLI: the dotted key and its value (JSON when it parses, else the text)."""
    if "=" not in item:
        raise ConfigError(f"--set needs KEY=VALUE (got {item!r}), for example --set {example}")
    key, text = item.split("=", 1)
    try:
        return key.strip(), json.loads(text)
    except json.JSONDecodeError:
        return key.strip(), text
    except RecursionError:
        raise ConfigError(f"--set value {text[:40]!r}... nests too deeply to be a setting; fix the value") from None
