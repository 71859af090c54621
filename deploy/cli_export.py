"""CLI commands of this part of deploy/ (registered on the `incop` app by incop_core.cli)."""

from __future__ import annotations

from typing import Any, Callable

import typer


def register(app: typer.Typer, guarded: Callable[[Callable[[], Any]], Any]) -> None:
    """Add this module's commands to `app`; wrap each body in `guarded` so user errors exit 2."""
