"""The `prune-and-export` flow: data -> finetune -> prune -> validate -> export -> benchmark -> publish -> report."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from deploy.pipeline_summary import bench_rows, explain_choice, summary_markdown
from incop_core.fileio import write_json_atomic, write_text_atomic
from incop_core.plots import comparison_plots
from incop_core.report import totals
from incop_core.rundir import load_records

from .artifacts import publish_summary, publish_tables
from .params import PipelineParams
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
    return {"report": str(folder), "summary": markdown}


@flow(name="prune-and-export", log_prints=True)
def prune_and_export(params: PipelineParams = PipelineParams()) -> dict:
    """Fine-tune, prune with InCoP, validate, export ONNX, benchmark, publish, report."""
    print(f"data: {data_stage(params)}")
    finetune_stage(params)
    run = prune_stage(params)
    validate_stage(run)
    export = export_stage(run)
    export_dir = str(Path(run) / "export")
    bench = benchmark_stage(export_dir, export, params.profiles, params.bench_rounds)
    published = publish_stage(params, export_dir, export, bench)
    choice = explain_choice(export, bench, params.publish_variant, params.publish_profile)
    result = report_stage(run, export, bench, published, choice)
    return {"run": run, "registry": params.registry, "name": published["name"], "version": published["version"], **result}
