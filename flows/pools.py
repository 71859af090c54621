"""The pipeline split across work pools: the same stages as `prune-and-export` (flows/pipeline.py's build_stages on
`gpu`, ship_stages on `cpu`), composed by a parent flow through `run_deployment`, exchanging an fsspec URI."""

from __future__ import annotations

from pathlib import Path
from typing import Optional
from uuid import UUID

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType, FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import Artifact, FlowRun
from prefect.deployments import run_deployment

from deploy.transfer import download_tree, upload_tree
from incop_core.foundations.errors import ConfigError, IncopError

from .params import PipelineParams
from .failures import user_errors
from .pipeline import build_stages, effective_params, resolve_params, ship_stages, unserved_changes
from .tasks import export_stage

GPU_DEPLOYMENT = "gpu-stages/gpu-stages"
CPU_DEPLOYMENT = "cpu-stages/cpu-stages"
SUMMARY_KEY = "prune-and-export-summary"  # the cpu run's summary artifact, shown again on the parent


def stage_uri(params: PipelineParams) -> str:
    if not params.storage:
        raise ConfigError("the work-pool pipeline needs `storage` (an fsspec URL both workers can reach)")
    return f"{params.storage.rstrip('/')}/{params.run.config_hash()}"


@flow(name="gpu-stages", log_prints=True)
@user_errors
def gpu_stages(params: PipelineParams) -> str:
    """Data, fine-tune, prune, validate and export on the GPU worker; uploads the run to `storage`."""
    params = effective_params(params)
    run, _ = build_stages(params)
    return upload_tree(Path(run), stage_uri(params))


@flow(name="cpu-stages", log_prints=True)
@user_errors
def cpu_stages(params: PipelineParams, source: str, changed: Optional[list[str]] = None) -> dict:
    """Benchmark, publish, gate and report on the CPU worker from the uploaded run. `changed`: the parameters the
    parent's run changed from what the parent serves (this deployment serves none, so it cannot tell by itself)."""
    params, own = resolve_params(params)
    changed = unserved_changes(own) if changed is None else changed
    run = download_tree(source, Path(params.runs_dir) / params.run.config_hash())
    return ship_stages(params, str(run), export_stage(str(run)), changed)


class ChildFailed(IncopError):
    """A child deployment's run ended other than Completed; the parent fails with the child's own reason."""


def run_child(name: str, parameters: dict) -> FlowRun:
    """Run a deployment to its end; anything but Completed stops the parent with a sentence naming it."""
    print(f"{name}: starting")
    child = run_deployment(name, parameters=parameters)
    if not child.state or not child.state.is_completed():
        ended = child.state.name if child.state else "without a state"
        reason = f": {child.state.message}" if child.state and child.state.message else ""
        raise ChildFailed(f"{name} ended {ended}{reason} (see the logs of its run {child.name})")
    print(f"{name}: run {child.name} completed")
    return child


def child_markdown(flow_run_id: UUID) -> list[Artifact]:
    """The markdown artifacts a child run created, read back through the API (the one thing every worker reaches)."""
    with get_client(sync_client=True) as client:
        return client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                     artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["markdown"])))


def show_child_result(child: FlowRun) -> str:
    """Copy the cpu run's markdown artifacts (the summary, the plots) onto this run, so the nightly run shows its
    result; its summary markdown. The child's return value would need result storage both workers share."""
    copied = [a for a in child_markdown(child.id) if a.key]
    for artifact in copied:
        create_markdown_artifact(key=artifact.key, markdown=artifact.data, description=artifact.description)
    summary = next((a.data for a in copied if a.key == SUMMARY_KEY), None)
    if summary is None:
        raise RuntimeError(f"cpu-stages run {child.name} completed without a {SUMMARY_KEY} artifact; see its logs")
    return summary


@flow(name="prune-and-export-pools", log_prints=True)
@user_errors
def prune_and_export_pools(params: PipelineParams) -> dict:
    """Parent flow: runs the GPU and CPU deployments in turn, passing the storage URI between them, and shows
    the CPU run's summary as its own."""
    params, changed = resolve_params(params)
    payload = {"params": params.model_dump(mode="json")}
    gpu = run_child(GPU_DEPLOYMENT, payload)
    cpu = run_child(CPU_DEPLOYMENT, {**payload, "source": stage_uri(params), "changed": unserved_changes(changed)})
    return {"source": stage_uri(params), "gpu_run": str(gpu.id), "cpu_run": str(cpu.id),
            "summary": show_child_result(cpu)}
