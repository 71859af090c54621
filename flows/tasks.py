"""Thin Prefect tasks over the library: each passes paths and plain dicts, never models or tensors.

Inputs are not hashed for caching (NO_CACHE): stages resume from the run directory instead.
"""

from __future__ import annotations

from pathlib import Path
from prefect import task
from prefect.cache_policies import NO_CACHE

from deploy.export_run import export_run
from deploy.pipeline_summary import cached_benchmark, explain_choice, published_metrics
from deploy.registry_publish import publish
from deploy.validate import validate_sparsity
from incop_core.data import describe
from incop_core.runner import run_pruning

from .artifacts import PruneProgress
from .params import PipelineParams


@task(cache_policy=NO_CACHE)
def data_stage(params: PipelineParams) -> dict:
    return describe(params.run.data, params.run.seed)


@task(cache_policy=NO_CACHE)
def finetune_stage(params: PipelineParams) -> str:
    printer = PruneProgress(params.run.prune.iterations, artifact=False)  # the prune stage owns the progress artifact
    return str(run_pruning(params.run, Path(params.runs_dir), stop_after=0, on_event=printer))


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def prune_stage(params: PipelineParams) -> str:
    """A retry resumes from the last checkpointed iteration (the runner's resume)."""
    return str(run_pruning(params.run, Path(params.runs_dir), on_event=PruneProgress(params.run.prune.iterations)))


@task(cache_policy=NO_CACHE)
def validate_stage(run: str) -> dict:
    return validate_sparsity(Path(run))


@task(cache_policy=NO_CACHE)
def export_stage(run: str) -> dict:
    return export_run(Path(run)).manifest


@task(cache_policy=NO_CACHE)
def benchmark_stage(export_dir: str, export: dict, profiles: list[str], rounds: int) -> dict:
    return cached_benchmark(Path(export_dir), export, profiles, rounds)


@task(cache_policy=NO_CACHE)
def publish_stage(params: PipelineParams, export_dir: str, export: dict, bench: dict) -> dict:
    chosen, _ = explain_choice(export, bench, params.publish_variant, params.publish_profile)
    spec = {"mean": export["input_spec"]["mean"], "std": export["input_spec"]["std"]}
    return publish(params.registry, params.model_name, Path(export_dir) / export["artifacts"][chosen]["file"],
                   metrics={**published_metrics(export, bench, chosen), "variant": chosen}, input_spec=spec,
                   source={"run": export["run"], "config_hash": export["run"]}, private_key=params.signing_key)
