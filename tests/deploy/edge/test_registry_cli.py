"""The README's commands, end to end: keys, publish, list, serve over HTTP, pull, predict, rollback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.support.registry import assert_user_error, invoke, tiny_onnx

from tests.support.paths import ROOT


def _serve(registry: Path) -> tuple[subprocess.Popen, str]:
    """`incop registry serve DIR --port 0` in a child process; returns it and the URL it printed."""
    command = [sys.executable, "-m", "incop_core.cli.main", "registry", "serve", str(registry), "--port", "0"]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    assert line.startswith("serving"), line
    return child, line.split(" at ")[1].split()[0]


def test_publish_serve_pull_predict_rollback_from_the_command_line(tmp_path):
    models = [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i) for i in range(2)]
    (tmp_path / "metrics.json").write_text(json.dumps({"accuracy": 0.9, "latency_ms": {"edge-1t": {"p50": 0.1}}}))
    np.save(tmp_path / "img.npy", np.full((8, 8), 128, np.uint8))
    registry, dest, keys = tmp_path / "registry", tmp_path / "device", tmp_path / "keys"
    assert invoke("keys", "generate", "--out", keys)[0] == 0
    assert_user_error(invoke("keys", "generate", "--out", keys), "--force")
    for model in models:
        code, stdout, _ = invoke("publish", model, "--registry", registry, "--name", "tiny", "--metrics",
                                 tmp_path / "metrics.json", "--input-spec", '{"mean": 0.5, "std": 0.25}',
                                 "--key", keys / "incop.key", "--source-run", "883fe0c6")
        assert code == 0 and "published: tiny" in stdout and "(signed)" in stdout
    code, stdout, _ = invoke("publish", models[1], "--registry", registry, "--name", "tiny", "--metrics",
                             tmp_path / "metrics.json", "--input-spec", '{"mean": 0.5, "std": 0.25}',
                             "--key", keys / "incop.key", "--source-run", "883fe0c6")
    assert code == 0 and "already published" in stdout
    assert invoke("registry", "list", registry)[1].strip() == "tiny: 1 2* (channels: stable=2)"
    server, url = _serve(registry)
    try:
        common = ("--registry", url, "--name", "tiny", "--dest", dest, "--public-key", keys / "incop.pub")
        assert "pulled tiny v1" in invoke("pull", *common, "--version", "1")[1]
        assert "pulled tiny v2" in invoke("pull", *common)[1]
        code, stdout, _ = invoke("predict", "--model", dest, tmp_path / "img.npy", "--json")
        assert code == 0 and json.loads(stdout)["image"].endswith("img.npy")
        assert "rolled back tiny to v1" in invoke("rollback", "--dest", dest)[1]
        assert (dest / "current/model.onnx").read_bytes() == models[0].read_bytes()
    finally:
        server.terminate()
        server.wait(10)


def test_bad_command_line_values_are_one_sentence(tmp_path):
    model = tiny_onnx(tmp_path / "m.onnx")
    assert_user_error(invoke("publish", model, "--registry", tmp_path / "r", "--name", "t", "--metrics", "{oops"),
                      "--metrics")
    assert_user_error(invoke("publish", model, "--registry", tmp_path / "r", "--name", "t", "--file", "x"), "NAME=PATH")
    assert_user_error(invoke("publish", model, "--registry", tmp_path / "r", "--name", "t", "--input-spec",
                             '{"mean": [0.1, 0.2]}'), "one mean per channel")
    assert_user_error(invoke("publish", model, "--registry", tmp_path / "r", "--name", "t", "--key", model),
                      "private key")
    assert_user_error(invoke("registry", "serve", tmp_path / "nowhere"), "publish a model")
