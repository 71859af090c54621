"""The pipeline split across work pools: GPU stages (finetune, prune, export) on `gpu`, benchmark and
publish on `cpu`, composed by a parent flow through `run_deployment`, exchanging an fsspec URI."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.deployments import run_deployment

from deploy.pipeline_summary import explain_choice
from deploy.transfer import download_tree, upload_tree
from incop_core.errors import ConfigError

from .params import PipelineParams
from .pipeline import report_stage
from .tasks import (benchmark_stage, data_stage, export_stage, finetune_stage, prune_stage, publish_stage,
                    validate_stage)

GPU_DEPLOYMENT = "gpu-stages/gpu-stages"
CPU_DEPLOYMENT = "cpu-stages/cpu-stages"


def stage_uri(params: PipelineParams) -> str:
    if not params.storage:
        raise ConfigError("the work-pool pipeline needs `storage` (an fsspec URL both workers can reach)")
    return f"{params.storage.rstrip('/')}/{params.run.config_hash()}"


@flow(name="gpu-stages", log_prints=True)
def gpu_stages(params: PipelineParams) -> str:
    """Data, fine-tune, prune, validate and export on the GPU worker; uploads the run to `storage`."""
    data_stage(params)
    finetune_stage(params)
    run = prune_stage(params)
    validate_stage(run)
    export_stage(run)
    return upload_tree(Path(run), stage_uri(params))


@flow(name="cpu-stages", log_prints=True)
def cpu_stages(params: PipelineParams, source: str) -> dict:
    """Benchmark, publish and report on the CPU worker from the uploaded run."""
    run = download_tree(source, Path(params.runs_dir) / params.run.config_hash())
    export = export_stage(str(run))
    bench = benchmark_stage(str(run / "export"), export, params.profiles, params.bench_rounds)
    published = publish_stage(params, str(run / "export"), export, bench)
    choice = explain_choice(export, bench, params.publish_variant, params.publish_profile)
    return report_stage(str(run), export, bench, published, choice)


@flow(name="prune-and-export-pools", log_prints=True)
def prune_and_export_pools(params: PipelineParams) -> dict:
    """Parent flow: runs the GPU and CPU deployments in turn, passing the storage URI between them."""
    payload = {"params": params.model_dump(mode="json")}
    gpu = run_deployment(GPU_DEPLOYMENT, parameters=payload)
    if not gpu.state or not gpu.state.is_completed():
        raise RuntimeError(f"gpu-stages ended {gpu.state.name if gpu.state else 'without a state'}; see its logs")
    cpu = run_deployment(CPU_DEPLOYMENT, parameters={**payload, "source": stage_uri(params)})
    if not cpu.state or not cpu.state.is_completed():
        raise RuntimeError(f"cpu-stages ended {cpu.state.name if cpu.state else 'without a state'}; see its logs")
    return {"source": stage_uri(params), "gpu_run": str(gpu.id), "cpu_run": str(cpu.id)}
