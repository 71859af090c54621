"""`incop bench`: time ONNX models side by side under onnxruntime CPU profiles (declared in pyproject's
`incop.commands` entry points). Only typer and rich load here; onnxruntime loads when the command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

PROFILE_NAMES = "edge-1t, cpu-2t, throughput"


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
    from ..export.filenames import variant_of

    names = [variant_of(p) for p in models]
    return {(n if names.count(n) == 1 else str(p)): p for n, p in zip(names, models)}


def _export_manifest(models: List[Path]) -> Optional[dict]:
    """The export manifest beside the models, when they all come from one export folder."""
    from incop_core.foundations.fileio import read_json

    from ..export.filenames import MANIFEST

    folders = {Path(p).resolve().parent for p in models}
    manifest = folders.pop() / MANIFEST if len(folders) == 1 else None
    return read_json(manifest) if manifest and manifest.is_file() else None


def register(app: typer.Typer, guarded: Callable[[Callable[[], Any]], Any]) -> None:
    """Add `bench` to `app`; its body runs inside `guarded` so user errors exit 2."""

    @app.command()
    def bench(models: List[Path] = typer.Argument(..., help="ONNX files to time side by side."),
              profile: List[str] = typer.Option(["edge-1t"], "--profile", "-p", help="Target profile(s): "
                                                                                     f"{PROFILE_NAMES}."),
              baseline: Optional[str] = typer.Option(None, help="Variant the speed-ups divide by (default dense or the "
                                                                "first)."),
              rounds: Optional[int] = typer.Option(None, min=1, help="Interleaved rounds (default per profile)."),
              per_round: Optional[int] = typer.Option(None, min=1, help="Timed runs per model per round."),
              warmup: int = typer.Option(5, min=0, help="Untimed runs per model first."),
              out: Optional[Path] = typer.Option(None, help="Write bench.json, bench.md and charts here."),
              as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
        """Benchmark ONNX models under onnxruntime CPU profiles (p50/p90/p99, throughput, share of peak)."""

        def go() -> None:
            from ..errors import ProfileError
            from .report import write_report
            from .timing import benchmark

            names = [p.strip() for item in profile for p in item.split(",") if p.strip()]
            named = _named(models)
            if baseline is not None and baseline not in named:
                raise ProfileError(f"baseline {baseline!r} is not one of the models ({', '.join(named)}); choose one "
                                   "of them")
            result = benchmark(named, names, baseline, warmup, rounds, per_round)
            if out is not None:
                write_report(result, out, export=_export_manifest(models))
            typer.echo(json.dumps(result, indent=2)) if as_json else _print_bench(result)

        guarded(go, {"--out": out})
