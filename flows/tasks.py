"""Thin Prefect tasks over the library: each passes paths and plain dicts, never models or tensors.

Inputs are not hashed for caching (NO_CACHE): stages resume from the run directory instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional
from uuid import UUID

from prefect.cache_policies import NO_CACHE

from deploy.edge.publish import publish
from deploy.edge.release import promote
from deploy.edge.signing import load_private_key
from deploy.export.reopen import load_run, normalised
from deploy.decisions.gate import CANDIDATE, STABLE, gate
from deploy.export.exporter import export_run
from deploy.export.validate import validate_sparsity
from deploy.decisions.summary import cached_benchmark, published_metrics
from incop_core.imp import paths
from incop_core.datasets.data import describe
from incop_core.imp.rundir import load_records
from incop_core.imp.runlock import LOCK_WAIT_SECONDS
from incop_core.imp.runner import run_pruning

from .artifacts import PruneProgress
from .failures import stage
from .params import PipelineParams


@stage(cache_policy=NO_CACHE)
def data_stage(params: PipelineParams) -> dict:
    info = describe(params.run.data, params.run.seed)
    print(f"data: {info['name']}, {info['train']} training / {info['val']} validation / {info['test']} test images, "
          f"{info['classes']} classes")
    return info


def _pruning(params: PipelineParams, progress: Optional[UUID], stages: range, stop_after: Optional[int]) -> str:
    """Run (or resume) the pruning loop up to `stop_after`, first logging the iterations of `stages` already done."""
    printer = PruneProgress(params.run, progress)
    printer.replay(paths.run_dir(Path(params.runs_dir), params.run.config_hash()), stages)
    return str(run_pruning(params.run, Path(params.runs_dir), stop_after=stop_after, on_event=printer,
                           lock_wait=LOCK_WAIT_SECONDS))  # a second run of the same config waits, then reuses


@stage(cache_policy=NO_CACHE)
def finetune_stage(params: PipelineParams, progress: Optional[UUID] = None) -> str:
    run = _pruning(params, progress, range(0, 1), stop_after=0)
    print(f"fine-tune stage finished: {run}")
    return run


@stage(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def prune_stage(params: PipelineParams, progress: Optional[UUID] = None) -> str:
    """A retry resumes from the last checkpointed iteration (the runner's resume)."""
    run = _pruning(params, progress, range(1, params.run.prune.iterations + 1), stop_after=None)
    last = load_records(Path(run))[-1]
    print(f"prune stage finished: {100 * last['remaining_fraction']:.1f} % weights left after {last['iteration']} "
          f"iterations, validation {100 * last['val_acc']:.2f} %")
    return run


@stage(cache_policy=NO_CACHE)
def validate_stage(run: str) -> dict:
    report = validate_sparsity(Path(run))
    print(f"sparsity checked: iteration {report['iteration']} keeps {report['nonzero']} of {report['total']} weights "
          f"({100 * report['sparsity']:.1f} % zero) as its mask and record say")
    return report


@stage(cache_policy=NO_CACHE)
def export_stage(run: str) -> dict:
    manifest = export_run(Path(run), lock_wait=LOCK_WAIT_SECONDS).manifest
    print(f"exported {len(manifest['artifacts'])} ONNX variants: " + ", ".join(
        f"{name} ({100 * entry['accuracy']:.2f} % test)" for name, entry in manifest["artifacts"].items()))
    return manifest


@stage(cache_policy=NO_CACHE)
def benchmark_stage(export_dir: str, export: dict, profiles: list[str], rounds: int) -> dict:
    print(f"benchmark: {len(export['artifacts'])} variants on {', '.join(profiles)}, {rounds} rounds each")
    bench = cached_benchmark(Path(export_dir), export, profiles, rounds)
    for profile, result in bench["profiles"].items():
        fastest = min(result["models"], key=lambda name: result["models"][name]["p50_ms"])
        print(f"benchmark {profile}: fastest {fastest} at {result['models'][fastest]['p50_ms']:.3f} ms p50")
    return bench


@stage(cache_policy=NO_CACHE)
def publish_stage(params: PipelineParams, export_dir: str, export: dict, bench: dict, chosen: str) -> dict:
    """Publish the variant the flow chose (explain_choice, once per run) to the `candidate` channel."""
    spec = {"mean": export["input_spec"]["mean"], "std": export["input_spec"]["std"]}
    published = publish(params.registry, params.model_name, Path(export_dir) / export["artifacts"][chosen]["file"],
                        metrics={**published_metrics(export, bench, chosen), "variant": chosen}, input_spec=spec,
                        source={"run": export["run"], "config_hash": export["run"]}, private_key=params.signing_key,
                        channel=CANDIDATE)
    print(f"published {chosen} as {published['name']} version {published['version']} in {params.registry} "
          f"(channel {CANDIDATE})")
    return published


@stage(cache_policy=NO_CACHE)
def gate_stage(params: PipelineParams, run: str, export_dir: str, export: dict, published: dict,
               changed: list[str]) -> dict:
    """Promote the candidate to `stable` when it passes the gate against the current stable
    (deploy/decisions/gate.py)."""
    def validation() -> tuple:  # the run's data are loaded only when there is a stable version to compare with
        loaded = load_run(Path(run))
        images, labels = normalised(loaded.data.val, loaded.data)
        return images.numpy(), labels.numpy()

    key = load_private_key(params.signing_key) if params.signing_key else None
    verdict = gate(params.registry, params.model_name, published,
                   Path(export_dir) / export["artifacts"][published["metrics"]["variant"]]["file"],
                   export["input_spec"], validation, params.publish_profile, params.bench_rounds,
                   params.promote_tolerance_pp, params.promote_latency_slack, changed,
                   public_key=key.public_key() if key is not None else None)
    if verdict.promote:
        promote(params.registry, params.model_name, published["version"], channel=STABLE,
                private_key=params.signing_key)
    print(f"release gate: {verdict.reason}")
    return {"promoted": verdict.promote, "channel": STABLE if verdict.promote else CANDIDATE, "reason": verdict.reason,
            "figures": verdict.figures}
