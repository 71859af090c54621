"""CLI commands of this part of deploy/ (registered on the `incop` app by incop_core.cli): export and bench.

Heavy imports (torch, onnx, onnxruntime) stay inside the command bodies so `incop` starts light.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

PROFILE_NAMES = "edge-1t, cpu-2t, throughput"


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f}"


def _print_export(result) -> None:
    table = Table("variant", "file", "val acc %", "test acc %", "parity max abs", "top-1 agreement %", "raw KB", "zstd KB",
                  title=f"export of run {result.manifest['run']} -> {result.out_dir}")
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


def _print_bench(result: dict) -> None:
    for profile, run in result["profiles"].items():
        table = Table("model", "p50 ms", "p90 ms", "p99 ms", "spread", "per s", "speed-up", "GFLOP/s", "of peak",
                      title=f"{profile}: peak {run['peak']['gflops']:.1f} GFLOP/s, baseline {result['baseline']}")
        for name, s in run["models"].items():
            table.add_row(name, f"{s['p50_ms']:.3f}", f"{s['p90_ms']:.3f}", f"{s['p99_ms']:.3f}", f"{s['spread']:.3f}",
                          f"{s['throughput_per_s']:.1f}", f"{s.get('speedup_p50', 1.0):.2f}", f"{s['gflops']:.1f}",
                          f"{s['peak_share']:.2f}")
        Console().print(table)


def _named(models: List[Path]) -> dict[str, Path]:
    """Variant names for the files (dense.onnx -> dense); a clash falls back to the full path."""
    from .artifacts import variant_of

    names = [variant_of(p) for p in models]
    return {(n if names.count(n) == 1 else str(p)): p for n, p in zip(names, models)}


def _export_manifest(models: List[Path]) -> Optional[dict]:
    """The export manifest beside the models, when they all come from one export folder."""
    from incop_core.fileio import read_json

    from .artifacts import MANIFEST

    folders = {Path(p).resolve().parent for p in models}
    manifest = folders.pop() / MANIFEST if len(folders) == 1 else None
    return read_json(manifest) if manifest and manifest.is_file() else None


def register(app: typer.Typer, guarded: Callable[[Callable[[], Any]], Any]) -> None:
    """Add this module's commands to `app`; wrap each body in `guarded` so user errors exit 2."""

    @app.command()
    def export(run: str = typer.Argument(..., help="Run hash (or a prefix) or directory."),
               runs_dir: Path = typer.Option(Path("runs"), help="Where run directories live."),
               out: Optional[Path] = typer.Option(None, help="Output folder (default: RUN/export)."),
               parity_images: int = typer.Option(2000, min=1, help="Test images compared with PyTorch."),
               calibration_images: int = typer.Option(256, min=1, help="Training images that calibrate INT8."),
               int8: bool = typer.Option(True, "--int8/--no-int8", help="Also write the INT8 (QDQ) models: all operators, and fully connected layers only."),
               compaction: bool = typer.Option(True, "--compact/--no-compact", help="Also write the compacted model."),
               as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON.")) -> None:
        """Validate sparsity, compact, and export ONNX (dense, pruned, compacted, INT8), each parity-checked."""

        def go() -> None:
            from .run import export_run
            from .runload import resolve_run

            result = export_run(resolve_run(run, runs_dir), out, parity_images, calibration_images, int8, compaction)
            typer.echo(json.dumps(result.manifest, indent=2)) if as_json else _print_export(result)

        guarded(go, {"--out": out})

    @app.command()
    def bench(models: List[Path] = typer.Argument(..., help="ONNX files to time side by side."),
              profile: List[str] = typer.Option(["edge-1t"], "--profile", "-p", help=f"Target profile(s): {PROFILE_NAMES}."),
              baseline: Optional[str] = typer.Option(None, help="Variant the speed-ups divide by (default dense or the first)."),
              rounds: Optional[int] = typer.Option(None, min=1, help="Interleaved rounds (default per profile)."),
              per_round: Optional[int] = typer.Option(None, min=1, help="Timed runs per model per round."),
              warmup: int = typer.Option(5, min=0, help="Untimed runs per model first."),
              out: Optional[Path] = typer.Option(None, help="Write bench.json, bench.md and charts here."),
              as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
        """Benchmark ONNX models under onnxruntime CPU profiles (p50/p90/p99, throughput, share of peak)."""

        def go() -> None:
            from ..bench.report import write_report
            from ..bench.run import benchmark
            from ..errors import ProfileError

            names = [p.strip() for item in profile for p in item.split(",") if p.strip()]
            named = _named(models)
            if baseline is not None and baseline not in named:
                raise ProfileError(f"baseline {baseline!r} is not one of the models ({', '.join(named)}); choose one of them")
            result = benchmark(named, names, baseline, warmup, rounds, per_round)
            if out is not None:
                write_report(result, out, export=_export_manifest(models))
            typer.echo(json.dumps(result, indent=2)) if as_json else _print_bench(result)

        guarded(go, {"--out": out})
