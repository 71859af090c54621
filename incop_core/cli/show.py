"""What `incop runs` and `incop report` print: rich tables of the runs under a folder and of one run's iterations."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from incop_core.cli.guard import warn


def print_runs(runs_dir: Path) -> None:
    from incop_core.imp.rundir import list_runs

    rows = list_runs(runs_dir)
    table = Table("run", "model", "data", "schedule", "criterion", "state", "done", "remaining %", "test acc %")
    for r in rows:
        pct = lambda v: "" if v is None else f"{100 * v:.2f}"  # noqa: E731
        table.add_row(r["run"], r["model"], r["data"], r["schedule"], r["criterion"], r["state"], r["done"],
                      pct(r["remaining"]), pct(r["test_acc"]))
    Console().print(table if rows else f"no runs under {runs_dir}")
    for r in rows:
        if r.get("problem"):
            warn(r["problem"])


def print_report(run: Path, as_json: bool = False) -> None:
    from incop_core.imp.records import iteration_rows, run_warnings, totals
    from incop_core.imp.rundir import check_status, load_records

    records, status = load_records(run), check_status(run)
    if as_json:
        typer.echo(json.dumps({"run": run.name, "status": status, "totals": totals(records),
                               "iterations": iteration_rows(records)}, indent=2))
        return
    rows = iteration_rows(records)
    table = Table(*(rows[0].keys() if rows else ["iter"]), title=f"run {run.name} ({status['state']})")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    Console().print(table)
    t = totals(records)
    Console().print(f"retraining epochs {t['retrain_epochs']}, pruning wall {t['pruning_wall_seconds']:.1f} s, "
                    f"flow share {100 * t['flow_share']:.1f} %")
    for line in run_warnings(records)[:1]:  # a collapsed run warns at every iteration; the first says it
        warn(line)
    if status["state"] == "failed" and status.get("error"):
        warn(f"the run failed: {status['error']}")
