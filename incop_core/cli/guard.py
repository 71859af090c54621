"""How every `incop` command reports: one sentence on stderr and exit status 2 for a user error (errors.explain), a
warning line, a resume hint on Ctrl-C; a bug keeps its traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import typer
from rich.console import Console
from rich.markup import escape

from incop_core.foundations.errors import explain

console = Console(stderr=True)


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def warn(message: str) -> None:
    console.print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def guarded(fn: Callable[..., Any], outputs: Optional[Mapping[str, Optional[Path]]] = None) -> Any:
    """Run a command body; an expected failure (errors.explain) becomes one sentence and exit status 2, a bug
    keeps its traceback. `outputs` names the command's output options, e.g. {"--out": out}, for the sentence."""
    try:
        return fn()
    except KeyboardInterrupt:
        console.print("interrupted; re-run the same command to resume from the last finished iteration")
        raise typer.Exit(130)
    except Exception as exc:
        sentence = explain(exc, outputs)
        if sentence is None:
            raise
        _fail(sentence)
