"""The `prune-and-export` flow: data -> finetune -> prune -> validate -> export -> benchmark -> publish -> report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.runtime import deployment

from deploy.pipeline.summary import bench_rows, explain_choice, summary_markdown
from incop_core.fileio import write_json_atomic, write_text_atomic
from incop_core.plots import comparison_plots
from incop_core.report import totals
from incop_core.rundir import load_records

from .artifacts import PruneProgress, publish_summary, publish_tables
from .checks import preflight
from .params import PipelineParams, deep_merge, differences, validated
from .tasks import benchmark_stage, data_stage, export_stage, finetune_stage, prune_stage, publish_stage, validate_stage

REPORT_DIR = "report"


@task(cache_policy=NO_CACHE)
def report_stage(run: str, export: dict, bench: dict, published: dict, choice: tuple[str, dict]) -> dict:
    """Write the report into the run directory and show it as Prefect artifacts."""
    records, folder = load_records(Path(run)), Path(run) / REPORT_DIR
    markdown = summary_markdown(totals(records), export, bench, choice[0], published, choice[1])
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
    """In a deployment run, what the caller set (pydantic tracks it) deep-merged onto the served parameters, so a
    run from the API or the UI that sets only run.prune.iterations keeps every other served setting. A direct call
    (the CLI merges its own) is used as given. Logs the fields that differ from the defaults."""
    served, defaults = served_params(), PipelineParams().model_dump(mode="json")
    if served is not None:
        defaults = deep_merge(defaults, served)
        params = validated(deep_merge(defaults, params.model_dump(mode="json", exclude_unset=True)))
    preflight(params)  # cross-field checks in the form's field names, seconds into the run
    changed = differences(defaults, params.model_dump(mode="json"))
    print(f"parameters: the {'served' if served is not None else 'default'} ones"
          + (", with " + ", ".join(f"{key}={value!r}" for key, value in changed.items()) if changed else ""))
    return params


@flow(name="prune-and-export", log_prints=True)
def prune_and_export(params: PipelineParams = PipelineParams()) -> dict:
    """Fine-tune, prune with InCoP, validate, export ONNX, benchmark, publish, report."""
    params = effective_params(params)
    progress = PruneProgress.create(params.run, params.runs_dir)
    data_stage(params)
    finetune_stage(params, progress)
    run = prune_stage(params, progress)
    validate_stage(run)
    export = export_stage(run)
    export_dir = str(Path(run) / "export")
    bench = benchmark_stage(export_dir, export, params.profiles, params.bench_rounds)
    published = publish_stage(params, export_dir, export, bench)
    choice = explain_choice(export, bench, params.publish_variant, params.publish_profile)
    result = report_stage(run, export, bench, published, choice)
    return {"run": run, "registry": params.registry, "name": published["name"], "version": published["version"], **result}
