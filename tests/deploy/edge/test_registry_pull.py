"""Pulling over a real loopback HTTP server: verify, swap, keep the previous version, roll back, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.edge.errors import DeviceError
from deploy.edge.publish import publish
from deploy.edge.pull import pull, rollback
from deploy.edge.pull_device import Device
from tests.support.registry import assert_user_error, invoke, tiny_onnx, tree_bytes

from tests.support.paths import ROOT


def _publish(srv, tmp_path, count: int, hidden: int = 16) -> list[Path]:
    models = [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i, hidden=hidden) for i in range(count)]
    for model in models:
        publish(str(srv.root_dir), "tiny", model)
    return models


def test_pull_swaps_keeps_one_previous_and_rollback_restores_it_byte_for_byte(server, tmp_path):
    models = _publish(server, tmp_path, 3)
    dest = tmp_path / "dev"
    first = pull(server.url, "tiny", dest, version="1")
    assert (first["version"], first["previous"], first["changed"]) == ("1", None, True)
    before = tree_bytes(dest / "current")
    second = pull(server.url, "tiny", dest, version="2")
    assert (second["version"], second["previous"]) == ("2", "1")
    assert (dest / "current/model.onnx").read_bytes() == models[1].read_bytes()
    third = pull(server.url, "tiny", dest)  # latest
    assert (third["version"], third["previous"]) == ("3", "2")
    assert sorted(p.name for p in (dest / "versions").iterdir()) == ["2", "3"]  # older versions pruned
    assert not (dest / ".partial").exists()
    assert rollback(dest)["version"] == "2"
    assert (dest / "current/model.onnx").read_bytes() == models[1].read_bytes()
    assert rollback(dest)["version"] == "3"  # rolling back twice rolls forward
    pull(server.url, "tiny", dest, version="1", allow_downgrade=True)  # an older version is an explicit choice
    assert rollback(dest)["version"] == "3"
    pull(server.url, "tiny", dest, version="1", allow_downgrade=True)
    assert tree_bytes(dest / "current") == before


def test_pulling_the_current_version_again_downloads_nothing(server, tmp_path):
    _publish(server, tmp_path, 1)
    dest = tmp_path / "dev"
    pull(server.url, "tiny", dest)
    server.requests.clear()
    again = pull(server.url, "tiny", dest)
    assert not again["changed"] and again["version"] == "1"
    assert [path for path, _ in server.requests] == ["/tiny/channels/stable.json", "/tiny/versions/1/manifest.json"]


def test_rollback_without_a_previous_version_is_a_clear_error(server, tmp_path):
    _publish(server, tmp_path, 1)
    assert_user_error(invoke("rollback", "--dest", tmp_path / "dev"), "no previous version")
    pull(server.url, "tiny", tmp_path / "dev")
    assert_user_error(invoke("rollback", "--dest", tmp_path / "dev"), "no previous version")


def test_a_damaged_previous_version_is_not_rolled_back_to(server, tmp_path):
    _publish(server, tmp_path, 2)
    dest = tmp_path / "dev"
    pull(server.url, "tiny", dest, version="1")
    pull(server.url, "tiny", dest, version="2")
    (dest / "versions/1/model.onnx").write_bytes(b"rot")
    assert_user_error(invoke("rollback", "--dest", dest), "damaged", "--version 1")
    assert os.readlink(dest / "current") == "versions/2"


def test_a_second_pull_on_the_same_device_is_refused_while_one_runs(server, tmp_path):
    _publish(server, tmp_path, 1)
    dest = tmp_path / "dev"
    with Device(dest).locked():
        assert_user_error(invoke("pull", "--registry", server.url, "--name", "tiny", "--dest", dest), "wait")
        with pytest.raises(DeviceError, match="another pull"):
            rollback(dest)
    assert pull(server.url, "tiny", dest)["version"] == "1"


def test_a_pull_killed_mid_download_resumes_with_a_range_request(server, tmp_path):
    models = _publish(server, tmp_path, 1, hidden=4096)  # about 1 MB: 17 chunks of 64 KiB
    dest = tmp_path / "dev"
    part = dest / ".partial/1/model.onnx"
    server.delay = 0.15
    code = f"from deploy.edge.pull import pull; pull({server.url!r}, 'tiny', {str(dest)!r})"
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(10)
    had = part.stat().st_size
    assert 0 < had < models[0].stat().st_size and not (dest / "current").exists()
    server.delay, server.requests[:] = 0.0, []
    code, stdout, _ = invoke("pull", "--registry", server.url, "--name", "tiny", "--dest", dest)
    assert code == 0 and "pulled tiny v1" in stdout
    resumed = [int(r.split("=")[1].rstrip("-")) for p, r in server.requests if p.endswith("model.onnx") and r]
    assert resumed and resumed[0] >= had
    assert (dest / "current/model.onnx").read_bytes() == models[0].read_bytes()


def test_pull_from_a_plain_directory_and_a_trusted_key_on_the_device(tmp_path):
    from deploy.edge.signing import generate_keys

    private, public = generate_keys(tmp_path / "keys")
    model = tiny_onnx(tmp_path / "m.onnx")
    registry = tmp_path / "reg"
    publish(str(registry), "tiny", model)
    dest = tmp_path / "dev"
    dest.mkdir()
    (dest / "trusted.pub").write_bytes(public.read_bytes())
    assert_user_error(invoke("pull", "--registry", registry, "--name", "tiny", "--dest", dest), "not signed")
    publish(str(registry), "tiny", model, private_key=private)
    code, stdout, _ = invoke("pull", "--registry", registry, "--name", "tiny", "--dest", dest)
    assert code == 0 and "v2" in stdout
