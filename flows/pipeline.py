"""The `prune-and-export` flow: data -> finetune -> prune -> validate -> export -> benchmark -> publish -> report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from prefect import flow
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.runtime import deployment, flow_run

from deploy.decisions.summary import bench_rows, explain_choice, summary_markdown
from incop_core.foundations.fileio import write_json_atomic, write_text_atomic
from incop_core.experiments.plots import comparison_plots
from incop_core.imp.records import totals
from incop_core.imp.rundir import load_records

from .artifacts import PruneProgress, publish_parameters, publish_summary, publish_tables
from .checks import preflight
from .failures import stage, user_errors
from .roots import allowed_roots, inside
from .params import PipelineParams, deep_merge, differences, validated
from .tasks import (benchmark_stage, data_stage, export_stage, finetune_stage, gate_stage, prune_stage, publish_stage,
                    validate_stage)

REPORT_DIR = "report"


@stage(cache_policy=NO_CACHE)
def report_stage(run: str, export: dict, bench: dict, published: dict, choice: tuple[str, dict],
                 release: Optional[dict] = None) -> dict:
    """Write the report into the run directory and show it as Prefect artifacts."""
    records, folder = load_records(Path(run)), Path(run) / REPORT_DIR
    markdown = summary_markdown(totals(records), export, bench, choice[0], published, choice[1],
                                (release or {}).get("reason"))
    write_text_atomic(folder / "summary.md", markdown)
    write_json_atomic(folder / "benchmark.json", {k: v for k, v in bench.items()})
    plots = comparison_plots({"this run": {0: records}}, folder)
    publish_tables(records, bench_rows(export, bench))
    publish_summary(markdown, plots)
    print(f"report written to {folder}")
    return {"report": str(folder), "summary": markdown}


def served_params() -> Optional[dict]:
    """The deployment's own `params` (what `incop serve` or prefect.yaml set), None outside a deployment run. Not
    prefect.runtime.deployment.parameters: that is this run's, where Prefect has already let a partial `params` replace
    the served one whole (its merge of a run's parameters onto the deployment's is shallow)."""
    if not deployment.id:
        return None
    with get_client(sync_client=True) as client:
        return client.read_deployment(deployment.id).parameters.get("params") or {}


def effective_params(params: PipelineParams) -> PipelineParams:
    return resolve_params(params)[0]


def resolve_params(params: PipelineParams) -> tuple[PipelineParams, dict]:
    """The effective parameters and the dotted keys in which they differ from the served (or default) ones.

    In a deployment run, what the caller set (pydantic tracks it) deep-merged onto the served parameters, so a
    run from the API or the UI that sets only run.prune.iterations keeps every other served setting. A direct call
    (the CLI merges its own) is used as given. Logs the fields that differ from the defaults."""
    served, defaults = served_params(), PipelineParams().model_dump(mode="json")
    if served is not None:
        own = params.model_dump(mode="json", exclude_unset=True)
        served = first_served(deep_merge(deep_merge(defaults, served), own), served)
        defaults = deep_merge(defaults, served)
        params = validated(deep_merge(defaults, own))
    preflight(params)  # cross-field checks in the form's field names, seconds into the run
    changed = differences(defaults, params.model_dump(mode="json"))
    origin = "served" if served is not None else "default"
    print(f"parameters: the {origin} ones"
          + (", with " + ", ".join(f"{key}={value!r}" for key, value in changed.items()) if changed else ""))
    if flow_run.id:
        publish_parameters(params.model_dump(mode="json"), changed, origin)
    return params, changed


def unserved_changes(changed: dict) -> list[str]:
    """What the release gate is told this run changed. Only a deployment run has served parameters to differ from;
    a direct call (`incop pipeline`, Python) runs the configuration its user chose, which may promote."""
    return sorted(changed) if deployment.id else []


def first_served(merged: dict, served: dict) -> dict:
    """The served parameters as this flow run's first attempt saw them, so a Retry from the UI re-runs what ran
    (not what is served by then); kept in RUNS_DIR/.flow-runs/<flow run id>.json."""
    runs_dir = str(merged.get("runs_dir") or "runs")
    if not inside(runs_dir, allowed_roots(deployment_run=True)):
        return served  # preflight refuses this runs_dir with its sentence; nothing is written there first
    try:
        folder = Path(runs_dir) / ".flow-runs"
        remembered = folder / f"{flow_run.id}.json"
        if remembered.is_file():
            return json.loads(remembered.read_text())["served"]
        write_json_atomic(remembered, {"served": served, "flow_run": str(flow_run.id)})
    except (OSError, ValueError, KeyError, TypeError):  # an unwritable runs_dir is preflight's sentence, not this one's
        pass
    return served


def build_stages(params: PipelineParams) -> tuple[str, dict]:
    """Data, fine-tune, prune, validate, export (the GPU's share): the run directory and its export manifest."""
    progress = PruneProgress.create(params.run, params.runs_dir)
    data_stage(params)
    finetune_stage(params, progress)
    run = prune_stage(params, progress)
    validate_stage(run)
    return run, export_stage(run)


def ship_stages(params: PipelineParams, run: str, export: dict, changed: list[str]) -> dict:
    """Benchmark, choose the variant, publish it to `candidate`, gate it, report (the CPU's share)."""
    export_dir = str(Path(run) / "export")
    bench = benchmark_stage(export_dir, export, params.profiles, params.bench_rounds)
    choice = explain_choice(export, bench, params.publish_variant, params.publish_profile)
    published = publish_stage(params, export_dir, export, bench, choice[0])
    release = gate_stage(params, run, export_dir, export, published, changed)
    result = report_stage(run, export, bench, published, choice, release)
    return {"run": run, "registry": params.registry, "name": published["name"], "version": published["version"],
            "channel": release["channel"], "promoted": release["promoted"], **result}


@flow(name="prune-and-export", log_prints=True)
@user_errors
def prune_and_export(params: PipelineParams = PipelineParams()) -> dict:
    """Fine-tune, prune with InCoP, validate, export ONNX, benchmark, publish, report."""
    params, changed = resolve_params(params)
    run, export = build_stages(params)
    return ship_stages(params, run, export, unserved_changes(changed))
