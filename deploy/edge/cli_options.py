"""Parsing of the registry commands' option values: JSON options (inline or a file, bounded), --file NAME=PATH,
durations. Each bad value is one sentence (IncopError) naming the option."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional


MAX_OPTION_BYTES = 1 << 20
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def json_option(value: Optional[str], flag: str) -> Optional[dict]:
    """Inline JSON or the path of a JSON file (at most 1 MiB, nested at most 32 deep)."""
    from incop_core.foundations.errors import IncopError

    from .manifest import load_json

    if value is None:
        return None
    inline = value.lstrip().startswith(("{", "["))  # never a file name: inline JSON may be longer than any path
    try:
        if not inline and Path(value).exists() and not Path(value).is_file():
            raise IncopError(f"{flag} {value[:80]!r} is not a regular file; pass inline JSON or a JSON file")
        data = (value.encode() if inline or not Path(value).is_file()
                else Path(value).read_bytes()[:MAX_OPTION_BYTES + 1])
    except OSError as exc:
        raise IncopError(f"cannot read {flag} file {value[:80]!r} ({exc.strerror or exc}); pass inline JSON or the "
                         "path of a readable JSON file") from None
    if len(data) > MAX_OPTION_BYTES:
        raise IncopError(f"{flag} file {value[:80]!r} is larger than 1 MiB; pass a smaller JSON object")
    try:
        parsed = load_json(data)
    except ValueError as exc:
        raise IncopError(f"{flag} must be a JSON object or the path of a JSON file, and {value[:80]!r} is not "
                         f"usable ({exc}); fix it") from None
    if not isinstance(parsed, dict):
        raise IncopError(f"{flag} must be a JSON object (got {type(parsed).__name__}); pass {{...}}")
    return parsed


def files_of(model: Path, extra: List[str]) -> dict:
    from incop_core.foundations.errors import IncopError

    files = {"model.onnx": model}
    for item in extra:
        if "=" not in item:
            raise IncopError(f"pass --file as NAME=PATH (got {item!r}), for example --file labels.txt=out/labels.txt")
        name, path = item.split("=", 1)
        if name in files:
            what = "the model given as the first argument" if name == "model.onnx" else "another --file"
            raise IncopError(f"--file {name}=... would replace {what}; give each registry file name once")
        files[name] = Path(path)
    return files


def duration(text: Optional[str], flag: str = "--expires") -> Optional[float]:
    """Seconds from `3600`, `90m`, `12h` or `7d`; None stays None."""
    from incop_core.foundations.errors import IncopError

    if text is None:
        return None
    raw = text.strip().lower()
    unit = DURATION_UNITS.get(raw[-1:], None) if raw else None
    number = raw[:-1] if unit else raw
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = float("nan")
    if not (seconds == seconds and 0 < seconds < float("inf")):
        raise IncopError(f"{flag} must be a duration such as 3600, 90m, 12h or 7d (got {text!r}); fix it")
    return seconds
