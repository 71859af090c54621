"""`incop export` (declared in pyproject's `incop.commands` entry points, loaded by incop_core.cli.main).

Heavy imports (torch, onnx, onnxruntime) stay inside the command body so `incop` starts light.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f}"


def _print_export(result) -> None:
    table = Table("variant", "file", "val acc %", "test acc %", "parity max abs", "top-1 agreement %", "raw KB",
                  "zstd KB", title=f"export of run {result.manifest['run']} -> {result.out_dir}")
    for name, path in result.paths.items():
        entry = result.manifest["artifacts"][name]
        parity = entry.get("parity") or {}
        table.add_row(name, path.name, f"{100 * entry['val_accuracy']:.2f}", f"{100 * entry['accuracy']:.2f}",
                      f"{parity['max_abs']:.1e}" if parity else "-",
                      f"{100 * parity['top1_agreement']:.2f}" if parity else "-",
                      _kb(entry["sizes"]["raw"]), _kb(entry["sizes"]["zstd"]))
    Console().print(table)
    removed = result.manifest["compaction"].get("channels_removed")
    if removed is not None:
        Console().print(f"compaction removed {removed} channels; max abs vs the masked model "
                        f"{result.manifest['compaction']['max_abs_vs_masked']:.1e}")


def register(app: typer.Typer, guarded: Callable[[Callable[[], Any]], Any]) -> None:
    """Add `export` to `app`; its body runs inside `guarded` so user errors exit 2."""

    @app.command()
    def export(run: str = typer.Argument(..., help="Run hash (or a prefix) or directory."),
               runs_dir: Path = typer.Option(Path("runs"), help="Where run directories live."),
               out: Optional[Path] = typer.Option(None, help="Output folder (default: RUN/export)."),
               parity_images: int = typer.Option(2000, min=1, help="Test images compared with PyTorch."),
               calibration_images: int = typer.Option(256, min=1, help="Training images that calibrate INT8."),
               int8: bool = typer.Option(True, "--int8/--no-int8", help="Also write the INT8 (QDQ) models: all "
                                                                        "operators, and fully connected layers only."),
               compaction: bool = typer.Option(True, "--compact/--no-compact", help="Also write the compacted model."),
               as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON.")) -> None:
        """Validate sparsity, compact, and export ONNX (dense, pruned, compacted, INT8), each parity-checked."""

        def go() -> None:
            from .exporter import export_run
            from incop_core.imp.rundir import resolve_run

            result = export_run(resolve_run(run, runs_dir), out, parity_images, calibration_images, int8, compaction)
            typer.echo(json.dumps(result.manifest, indent=2)) if as_json else _print_export(result)

        guarded(go, {"--out": out})
