"""Deployments: the nightly schedule served by `incop serve`, with a cron and a timezone."""

from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from .params import PipelineParams
from .pipeline import prune_and_export

DEPLOYMENT = "nightly-local"  # prune-and-export/nightly-local; prefect.yaml's work-pool one is nightly-pools


def nightly_deployment(cron: str, timezone: str, params: PipelineParams) -> RunnerDeployment:
    return prune_and_export.to_deployment(
        name=DEPLOYMENT, schedules=[Cron(cron, timezone=timezone)],
        parameters={"params": params.model_dump(mode="json")},
        description=f"Nightly prune-and-export at `{cron}` ({timezone}; the schedule badge shows the time without its "
                    "zone): fine-tune, InCoP pruning, ONNX export, benchmark, publish to `candidate`, promote to "
                    "`stable` through the release gate. Runs execute while `incop serve` runs; stopping it pauses this "
                    "deployment.",
        tags=["incop", "nightly"])


def serve_nightly(cron: str, timezone: str, params: PipelineParams) -> None:
    """Register the deployment and execute its runs (scheduled or triggered from the UI) until stopped.

    Stopping (Ctrl-C, SIGTERM) makes Prefect pause the deployment's schedule and delete its scheduled runs, so
    none pile up as Late; run `incop serve` again to resume (a later restart re-creates the schedule)."""
    serve(nightly_deployment(cron, timezone, params))
