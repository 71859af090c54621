"""The pooled pipeline for real: a local Prefect server, the two process work pools and their two workers made with
README's commands, `prefect deploy --all` from prefect.yaml, stage outputs passed through a local fsspec URL. The
parent shows the cpu run's summary and plots; a child that fails fails the parent with the child's reason."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from tests.support.flows import tiny_params
from tests.support.prefect_server import call, post, wait

pytestmark = pytest.mark.slow
from tests.support.paths import ROOT as REPO
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _prefect(env: dict, *args: str) -> str:
    done = subprocess.run([PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"prefect {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def pools(server, tmp_path_factory):
    """README's commands: two process pools, every deployment of prefect.yaml, one worker per pool. The gpu worker
    allows only `allowed/`, the cpu worker all of the test's folder, so a run whose runs_dir the gpu machine refuses
    gets past the parent and fails in its gpu child."""
    api, env = server
    folder = tmp_path_factory.mktemp("pools")
    (folder / "allowed").mkdir()
    env = {**env, "INCOP_HOME": str(REPO), "PREFECT_WORKER_QUERY_SECONDS": "2"}
    _prefect(env, "work-pool", "create", "gpu", "--type", "process")
    _prefect(env, "work-pool", "create", "cpu", "--type", "process")
    _prefect(env, "deploy", "--all")
    workers, logs = [], []
    for pool, roots in (("gpu", folder / "allowed"), ("cpu", folder)):
        log = open(folder / f"worker-{pool}.log", "w")
        logs.append(log)
        workers.append(subprocess.Popen([PREFECT, "worker", "start", "--pool", pool],
                                        env={**env, "INCOP_ALLOWED_ROOTS": str(roots)}, cwd=folder,
                                        stdout=log, stderr=subprocess.STDOUT))
    try:
        yield api, folder
    finally:
        for worker in workers:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:  # a loaded machine: a worker slow to stop is not the test's failure
                worker.kill()
                worker.wait(30)
        for log in logs:
            log.close()


def _parent(api: str, params: dict):
    async def read(client):
        return await client.read_deployment_by_name("prune-and-export-pools/nightly-pools")

    deployment = call(api, read)
    run_id = post(f"{api}/deployments/{deployment.id}/create_flow_run", {"parameters": {"params": params}})["id"]
    return wait(lambda: (lambda r: r if r.state.is_final() else None)(call(api, lambda c: c.read_flow_run(run_id))),
                 600, "the pooled run to finish")


def _params(root: Path) -> dict:
    params = tiny_params(root).model_copy(update={"storage": f"file://{root}/stages"})
    return params.model_dump(mode="json")


def _worker_logs(folder: Path) -> str:
    return "".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(folder.glob("worker-*.log")))


def test_the_parent_runs_both_pools_and_shows_the_cpu_runs_summary_and_plots(pools):
    api, folder = pools
    root = folder / "allowed"
    final = _parent(api, _params(root))
    assert final.state.is_completed(), f"{final.state.message}\n{_worker_logs(folder)}"

    artifacts = call(api, lambda c: c.read_artifacts(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[final.id]))))
    by_key = {a.key: a for a in artifacts if a.key}
    assert {"prune-and-export-summary", "prune-and-export-plots"} <= set(by_key)
    assert "data:image/png;base64," in by_key["prune-and-export-plots"].data
    stages = list((root / "stages").iterdir())  # the gpu run's upload, which the cpu run downloaded
    assert len(stages) == 1 and (stages[0] / "export" / "export.json").is_file()
    assert ((root / "runs" / stages[0].name / "report" / "summary.md").read_text()
            in by_key["prune-and-export-summary"].data)
    manifest = json.loads((root / "registry" / "tiny-cnn" / "channels" / "candidate.json").read_text())
    assert manifest["version"]


def test_a_failed_child_fails_the_parent_with_its_reason(pools):
    api, folder = pools
    elsewhere = folder / "elsewhere"  # allowed on the cpu worker that runs the parent, refused by the gpu worker
    final = _parent(api, _params(elsewhere))
    assert final.state.is_failed(), final.state
    message = final.state.message or ""
    assert "gpu-stages" in message and "runs_dir" in message and "INCOP_ALLOWED_ROOTS" in message, message
    assert not (elsewhere / "stages").exists()
