"""The `incop` command: a thin dispatcher over the library. User errors print one sentence and exit 2."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, List, Optional

import typer

from incop_core.cli.guard import console, guarded

# Only typer and rich load at start-up: device commands (pull, predict) must run without torch. A command body
# imports what it needs inside `guarded`, so a missing extra is one sentence (errors.explain) naming it.
SCHEDULE_NAMES = "egp, lth, sap"
CRITERION_NAMES = "accuracy, fixed-epochs, incop, incop-gf, incop-if"
DISTANCE_NAMES = "cka, disagreement, gf-paper, gf-relative, if-matrix, if-paper, kl"
COMPARE_METHODS = "accuracy,incop-disagreement,matched-incop-disagreement,final-only,one-shot"

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Information Consistent Pruning for edge deployment.")
DEFAULT_RUNS = Path("runs")


def build_config(config: Optional[Path], flags: dict[str, Any], overrides: List[str]):
    """File, then flags, then --set key=value overrides; validated once at the end."""
    from incop_core.foundations.rawconfig import parse_override
    from incop_core.foundations.rawconfig import read_config_file, set_dotted
    from incop_core.imp.config import validate

    raw = read_config_file(config) if config else {}
    for dotted, value in flags.items():
        if value is None:
            continue
        if dotted in ("prune.schedule", "prune.criterion"):
            value = {"kind": value}
        set_dotted(raw, dotted, value)
    for item in overrides:
        set_dotted(raw, *parse_override(item, "prune.schedule.p=1.0"))
    return validate(raw)


@app.command()
def prune(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="JSON or TOML run config."),
    model: Optional[str] = typer.Option(None, help="small-cnn, a torchvision model (resnet18, mobilenet_v2, "
                                                   "efficientnet_b0, ...; see README) or package.module:factory."),
    dataset: Optional[str] = typer.Option(None, help="fashion-mnist, mnist, cifar10, imagefolder or synthetic."),
    data_root: Optional[str] = typer.Option(None, help="Data directory."),
    train_subset: Optional[int] = typer.Option(None, help="Use this many training images."),
    test_subset: Optional[int] = typer.Option(None, help="Use this many test images."),
    schedule: Optional[str] = typer.Option(None, help=f"How much to prune: {SCHEDULE_NAMES}."),
    criterion: Optional[str] = typer.Option(None, help=f"When to stop retraining: {CRITERION_NAMES}."),
    scope: Optional[str] = typer.Option(None, help="global, layer, neuron, filter, layer-filter (structured, per "
                                                   "layer) or group (coupled channel sets)."),
    iterations: Optional[int] = typer.Option(None, help="Pruning iterations."),
    max_epochs: Optional[int] = typer.Option(None, help="Retraining epochs per iteration at most."),
    finetune_epochs: Optional[int] = typer.Option(None, help="Dense fine-tuning epochs."),
    distance: Optional[str] = typer.Option(None, help=f"Consistency signal of the incop criterion: {DISTANCE_NAMES}."),
    epsilon: Optional[float] = typer.Option(None, help="Distance threshold of the incop criteria (default: auto)."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    set_: List[str] = typer.Option([], "--set", help="Override any config field: --set prune.schedule.p=1.0"),
    runs_dir: Path = typer.Option(DEFAULT_RUNS, help="Where run directories live."),
    run_dir: Optional[Path] = typer.Option(None, help="Use this run directory instead of runs-dir/<config hash>."),
) -> None:
    """Fine-tune, then prune iteratively; re-running resumes after the last finished iteration."""
    flags = {"model.name": model, "data.name": dataset, "data.root": data_root, "data.train_subset": train_subset,
             "data.test_subset": test_subset, "prune.schedule": schedule, "prune.criterion": criterion,
             "prune.scope": scope, "prune.iterations": iterations, "prune.max_epochs": max_epochs,
             "finetune_epochs": finetune_epochs, "seed": seed, "device": device}
    if epsilon is not None:
        set_.append(f"prune.criterion.epsilon={epsilon}")
    if distance is not None:
        set_.append(f"prune.criterion.distance={distance}")

    def go() -> None:
        from incop_core.cli.progress import ProgressPrinter
        from incop_core.cli.show import print_report
        from incop_core.imp.runner import run_pruning

        cfg = build_config(config, flags, set_)
        with ProgressPrinter(console, cfg) as printer:
            run = run_pruning(cfg, runs_dir, run_dir, printer.on_event)
        print_report(run)
        typer.echo(str(run))

    guarded(go, {"--run-dir": run_dir} if run_dir else {"--runs-dir": runs_dir})


@app.command()
def compare(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="JSON or TOML base config."),
    methods: str = typer.Option(COMPARE_METHODS, help="Comma-separated: sap, lth, egp (fixed epochs; the base schedule "
                                "is the trajectory source), accuracy, final-only, one-shot, incop-DISTANCE "
                                f"({DISTANCE_NAMES}), matched-incop-DISTANCE (fixed epochs, same total as "
                                "incop-DISTANCE), legacy incop-if, incop-gf, incop-if-auto, incop-gf-auto."),
    seeds: str = typer.Option("0", help="Comma-separated distinct seeds (0 to 2^32-1); figures are mean ± std, "
                                        "differences paired per seed."),
    rewinds: str = typer.Option("finetuned", help="Comma-separated rewinds every method runs under: finetuned, "
                                                  "previous."),
    model: Optional[str] = typer.Option(None, help="Architecture."),
    dataset: Optional[str] = typer.Option(None, help="Data set."),
    train_subset: Optional[int] = typer.Option(None, help="Use this many training images."),
    test_subset: Optional[int] = typer.Option(None, help="Use this many test images."),
    iterations: Optional[int] = typer.Option(None, help="Pruning iterations."),
    max_epochs: Optional[int] = typer.Option(None, help="Retraining epochs per iteration (exact for lth/sap)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    set_: List[str] = typer.Option([], "--set", help="Override any base config field, e.g. --set prune.schedule.p=1.0"),
    runs_dir: Path = typer.Option(DEFAULT_RUNS, help="Where run directories live (finished runs are reused)."),
    out: Optional[Path] = typer.Option(None, help="Comparison directory (default runs-dir/compare/<id>)."),
) -> None:
    """Run methods side by side on the base schedule's sparsity trajectory (fixed epochs); write JSON, markdown and
    plots."""
    flags = {"model.name": model, "data.name": dataset, "data.train_subset": train_subset,
             "data.test_subset": test_subset, "prune.iterations": iterations, "prune.max_epochs": max_epochs,
             "device": device}

    def go() -> None:
        from incop_core.experiments.compare import run_compare
        from incop_core.experiments.methods import parse_seeds

        seed_list = parse_seeds(seeds)
        base = build_config(config, flags, set_)
        printer = lambda kind, info: kind == "method" and console.print(f"{info['method']} seed {info['seed']}")  # noqa: E731
        rewind_list = tuple(r.strip() for r in rewinds.split(",") if r.strip())
        method_list = [m.strip() for m in methods.split(",") if m.strip()]
        folder = run_compare(base, method_list, seed_list, runs_dir, out, printer, rewind_list)
        typer.echo((folder / "comparison.md").read_text())
        typer.echo(str(folder))

    guarded(go, {"--out": out, "--runs-dir": runs_dir})


@app.command()
def runs(runs_dir: Path = typer.Option(DEFAULT_RUNS, help="Where run directories live.")) -> None:
    """List runs with their status."""
    from incop_core.cli.show import print_runs

    guarded(lambda: print_runs(runs_dir))


@app.command()
def report(run: str = typer.Argument(..., help="Run hash (or a prefix) or directory."),
           runs_dir: Path = typer.Option(DEFAULT_RUNS, help="Where run directories live."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Show a run's iteration table."""

    def go() -> None:
        from incop_core.cli.show import print_report
        from incop_core.imp.rundir import resolve_run

        print_report(resolve_run(run, runs_dir), as_json)

    guarded(go)


COMMANDS = "incop.commands"  # entry-point group in pyproject.toml: `name = "package.module:register"`


def _register_commands() -> None:
    """Commands that live beside the core (export, bench, the edge registry, the Prefect pipeline): each package
    declares them as an entry point, so the core imports none of them; loading one imports typer and rich only."""
    for entry in sorted(entry_points(group=COMMANDS), key=lambda e: e.name):  # the help lists them in this order
        entry.load()(app, guarded)


_register_commands()


def main() -> None:
    app(prog_name="incop")


if __name__ == "__main__":
    sys.exit(main())
