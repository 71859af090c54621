"""Against a real local Prefect server: the served nightly deployment, a run triggered through the API
as the UI does, the schedule with its timezone, and invalid parameters rejected by the server."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.exceptions import PrefectHTTPStatusError

from tests.support.bad_inputs import expect_user_error, run_incop
from deploy.edge.signing import generate_keys
from flows.params import PipelineParams
from tests.support.flows import tiny_params
from tests.support.prefect_server import call, post, wait

pytestmark = pytest.mark.slow
CRON, TZ = "30 3 * * *", "Europe/Berlin"


def served_params(folder: Path):
    """tiny_params with a validation split that tells a trained model from a broken one (64 images, 100 % vs 20 %),
    signed, so the release gate and the devices have something to judge."""
    params = tiny_params(folder)
    run = params.run.model_copy(update={
        "data": params.run.data.model_copy(update={"synthetic_size": 320, "val_size": 64}),
        "optim": params.run.optim.model_copy(update={"batch_size": 32}), "finetune_epochs": 6})
    private, _ = generate_keys(folder / "keys")
    return params.model_copy(update={"run": run, "signing_key": str(private)})


@pytest.fixture(scope="module")
def served(server, tmp_path_factory):
    api, env = server
    folder = tmp_path_factory.mktemp("served")
    (folder / "params.json").write_text(served_params(folder).model_dump_json())
    incop = str(Path(sys.executable).with_name("incop"))
    proc = subprocess.Popen([incop, "serve", "--cron", CRON, "--timezone", TZ, "--config", str(folder / "params.json")],
                            env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield api, folder
    finally:
        proc.terminate()
        proc.wait(30)


def _deployment(api: str):
    async def read(client):
        try:
            return await client.read_deployment_by_name("prune-and-export/nightly-local")
        except Exception:
            return None
    return wait(lambda: call(api, read), 120, "the nightly deployment")


def test_nightly_schedule_has_its_timezone_and_the_server_schedules_runs(served):
    api, _ = served
    deployment = _deployment(api)
    schedule = deployment.schedules[0].schedule
    assert (schedule.cron, schedule.timezone) == (CRON, TZ)
    assert f"`{CRON}` ({TZ}" in deployment.description  # the UI's schedule badge leaves the timezone out

    async def scheduled(client):
        runs = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))
        return [r for r in runs if r.state and r.state.is_scheduled()]

    runs = wait(lambda: call(api, scheduled), 60, "scheduled runs")
    assert all(r.expected_start_time.astimezone().timestamp() > time.time() for r in runs)


def test_run_triggered_through_the_api_completes(served):
    api, folder = served
    deployment = _deployment(api)
    params = json.loads((folder / "params.json").read_text())
    params["run"]["prune"]["iterations"] = 1

    run = call(api, lambda c: c.create_flow_run_from_deployment(deployment.id, parameters={"params": params}))
    final = wait(lambda: (lambda r: r if r.state.is_final() else None)(call(api, lambda c: c.read_flow_run(run.id))),
                  400, "the triggered run to finish")
    assert final.state.is_completed(), final.state.message


def test_invalid_parameters_are_rejected_by_the_server_with_a_readable_message(served):
    api, folder = served
    deployment = _deployment(api)
    params = json.loads((folder / "params.json").read_text())
    params["bench_rounds"] = 0
    with pytest.raises(PrefectHTTPStatusError) as caught:
        call(api, lambda c: c.create_flow_run_from_deployment(deployment.id, parameters={"params": params}))
    assert "bench_rounds" in caught.value.response.text and caught.value.response.status_code in (409, 422)


def test_a_partial_run_from_the_ui_keeps_the_served_parameters_and_shows_its_progress(served):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

    api, folder = served
    deployment = _deployment(api)
    body = {"parameters": {"params": {"run": {"prune": {"iterations": 3}}}}}  # what the UI's Run button sends
    run_id = post(f"{api}/deployments/{deployment.id}/create_flow_run", body)["id"]
    final = wait(lambda: (lambda r: r if r.state.is_final() else None)(call(api, lambda c: c.read_flow_run(run_id))),
                  400, "the partial run to finish")
    assert final.state.is_completed(), final.state.message

    served_run = PipelineParams.model_validate_json((folder / "params.json").read_text()).run
    expected = served_run.model_copy(update={"prune": served_run.prune.model_copy(update={"iterations": 3})})
    config = json.loads((folder / "runs" / expected.config_hash() / "config.json").read_text())
    assert config["prune"]["iterations"] == 3 and config["data"] == served_run.data.model_dump(mode="json")
    manifests = (folder / "registry" / "tiny-cnn" / "versions").glob("*/manifest.json")
    assert expected.config_hash() in {json.loads(m.read_text())["source"]["run"] for m in manifests}

    def all_logs(client):  # the API returns at most 200 per call, and the last lines may still be on their way
        async def pages():
            found, page = [], None
            while page is None or len(page) == 200:
                page = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[final.id])), limit=200,
                                              offset=len(found))
                found += page
            text = "\n".join(log.message for log in found)
            return text if "benchmark edge-1t: fastest" in text else None
        return pages()

    text = wait(lambda: call(api, all_logs), 60, "the run's last log lines")
    assert "parameters: the served ones, with run.prune.iterations=3" in text
    assert "iteration 3/3 done" in text and "validation" in text and "benchmark edge-1t: fastest" in text
    artifacts = call(api, lambda c: c.read_artifacts(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[final.id]))))
    assert next(a for a in artifacts if a.key == "prune-progress").data == 100.0


def _run(api: str, deployment, params: dict, what: str):
    run_id = post(f"{api}/deployments/{deployment.id}/create_flow_run", {"parameters": {"params": params}})["id"]
    final = wait(lambda: (lambda r: r if r.state.is_final() else None)(call(api, lambda c: c.read_flow_run(run_id))),
                  400, what)
    assert final.state.is_completed(), final.state.message
    return final


def _channel(folder: Path, channel: str) -> str:
    return json.loads((folder / "registry" / "tiny-cnn" / "channels" / f"{channel}.json").read_text())["version"]


def test_a_worse_model_goes_to_candidate_and_a_device_following_stable_never_receives_it(served, tmp_path):
    api, folder = served
    deployment = _deployment(api)
    _run(api, deployment, {"run": {"prune": {"iterations": 1}}}, "a run with the served data and model")
    stable = _channel(folder, "stable")  # this run, or an earlier one of this module no worse than it
    device = ["--registry", str(folder / "registry"), "--name", "tiny-cnn", "--dest", str(tmp_path / "device"),
              "--public-key", str(folder / "keys" / "incop.pub")]
    assert run_incop("pull", *device)[0] == 0

    # every weight pruned away and that variant forced: published to candidate, kept off stable by the gate
    broken = {"publish_variant": "pruned",
              "run": {"prune": {"iterations": 2, "scope": "global", "schedule": {"kind": "lth", "fraction": 0.99}}}}
    _run(api, deployment, broken, "the broken run")
    worse = _channel(folder, "candidate")
    assert int(worse) > int(stable) and _channel(folder, "stable") == stable
    summaries = [json.loads(m.read_text())
                 for m in (folder / "registry" / "tiny-cnn" / "versions").glob("*/manifest.json")]
    assert any(m["version"] == worse and m["metrics"]["variant"] == "pruned" for m in summaries)
    code, out, _ = run_incop("pull", *device)
    assert code == 0 and f"v{worse}" not in out
    assert json.loads((tmp_path / "device" / "current" / "manifest.json").read_text())["version"] == stable
    assert run_incop("pull", *device, "--channel", "candidate", "--dest", str(tmp_path / "tester"))[0] == 0

    # by hand, signed: the stable follower now receives it; a pointer signed by another key is refused
    code, out, err = run_incop("promote", "tiny-cnn", worse, "--channel", "stable",
                               "--registry", str(folder / "registry"), "--key", str(folder / "keys" / "incop.key"))
    assert code == 0, err
    assert json.loads((folder / "registry" / "tiny-cnn" / "channels" / "stable.json").read_text()).get("signature")
    assert run_incop("pull", *device)[0] == 0
    assert json.loads((tmp_path / "device" / "current" / "manifest.json").read_text())["version"] == worse
    other, _ = generate_keys(tmp_path / "other")
    expect_user_error(run_incop("promote", "tiny-cnn", stable, "--channel", "stable", "--rollback", "--registry",
                                str(folder / "registry"), "--key", str(other)))

