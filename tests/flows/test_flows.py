"""The pipeline through Prefect's test harness on tiny data; artifacts read back through the client."""

import asyncio
import json
import time
from pathlib import Path

import pytest
import torch
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness

from flows.pipeline import prune_and_export
from tests.support.flows import tiny_params


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


async def _artifacts():
    async with get_client() as client:
        return await client.read_artifacts()


def test_flow_runs_every_stage_and_publishes_with_artifacts(harness, tmp_path):
    result = prune_and_export(tiny_params(tmp_path))
    run = Path(result["run"])
    assert (run / "export" / "export.json").is_file() and (run / "report" / "summary.md").is_file()
    manifest = json.loads((tmp_path / "registry" / "tiny-cnn" / "versions" / str(result["version"])
                           / "manifest.json").read_text())
    assert manifest["source"]["run"] == run.name and "latency" in manifest["metrics"]
    edge = manifest["metrics"]["latency"]["edge-1t"]
    assert edge["speedup_vs_dense"] >= 1.0  # never slower than dense on the profile that chose it
    assert manifest["metrics"]["val_accuracy"] >= manifest["metrics"]["dense_val_accuracy"] - 0.01
    assert "Why this variant" in result["summary"] and "chosen" in result["summary"]
    # a direct call runs the configuration its user chose (synthetic data here, not the defaults): it may promote
    assert result["promoted"] and result["channel"] == "stable", result["summary"]
    keys = {a.key for a in asyncio.run(_artifacts())}
    assert {"prune-progress", "prune-iterations", "benchmark", "prune-and-export-summary",
            "prune-and-export-plots"} <= keys
    assert all(a.type != "link" and "file://" not in str(a.data) for a in asyncio.run(_artifacts()))  # plots inline
    progress = [a for a in asyncio.run(_artifacts()) if a.key == "prune-progress"]
    assert progress[0].data == 100.0
    table = next(a for a in asyncio.run(_artifacts()) if a.key == "prune-iterations")
    assert len(json.loads(table.data)) == 3  # iterations 0, 1, 2
    again = prune_and_export(tiny_params(tmp_path))  # everything is reused; publishing the same model is a no-op
    assert again["version"] == result["version"]


async def _logs(flow_run_id):
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        return await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))


@pytest.mark.parametrize("override, field", [
    ({"run": {"data": {"name": "imagefolder", "root": "/nonexistent/images"}}}, "run.data.root"),
    ({"signing_key": "/nonexistent/incop.key"}, "signing_key"),
    pytest.param({"run": {"device": "cuda"}}, "run.device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")),
])
def test_a_rule_the_form_cannot_check_fails_the_run_with_a_state_message_naming_the_field(harness, tmp_path, override,
                                                                                        field):
    from flows.params import deep_merge, validated

    params = validated(deep_merge(tiny_params(tmp_path).model_dump(mode="json"), override))
    state = prune_and_export(params, return_state=True)
    assert state.is_failed() and field in state.message and "Traceback" not in state.message
    deadline = time.monotonic() + 30  # logs reach the API in batches, a moment after the run ends
    while True:
        logs = asyncio.run(_logs(state.state_details.flow_run_id))
        if any(field in log.message for log in logs):
            break
        assert time.monotonic() < deadline, [log.message for log in logs]
        time.sleep(0.5)
    assert not any("Traceback" in log.message for log in logs), \
        [log.message for log in logs if "Traceback" in log.message]
    assert not (tmp_path / "registry").exists()  # nothing was published


def test_a_stage_that_meets_a_user_error_stops_the_flow_once_without_retries(harness):
    from prefect import flow

    from flows.failures import stage, user_errors
    from incop_core.foundations.errors import ConfigError

    calls = []

    @stage(retries=2, retry_delay_seconds=0)
    def refuses(kind: str) -> str:
        calls.append(kind)
        if kind == "user":
            raise ConfigError("run.data.root is not a directory: set run.data.root")
        if len(calls) < 2:
            raise OSError("a transient disk error")
        return "done"

    @flow
    @user_errors
    def two_stages(kind: str) -> str:
        value = refuses(kind)
        calls.append("after")  # never reached after a failed stage
        return value

    state = two_stages("user", return_state=True)
    assert state.is_failed() and state.message == "run.data.root is not a directory: set run.data.root"
    assert calls == ["user"]  # not retried, and the flow stopped there
    calls.clear()
    # a bug may pass next time
    assert two_stages("transient") == "done" and calls == ["transient", "transient", "after"]
