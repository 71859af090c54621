"""The edge install: `pip install .` without extras gives a device that pulls, verifies, predicts and rolls back
against a served registry, with no torch and no Prefect; pipeline commands name the extra to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.bad_inputs import Outcome, expect_user_error
from tests.support.registry import tiny_onnx

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TRAINING_SIDE = {"torch", "torchvision", "prefect", "onnx", "torch-pruning", "matplotlib", "onnxscript"}


@pytest.fixture(scope="module")
def edge(tmp_path_factory) -> Path:
    """A fresh virtualenv holding the base install only; returns its bin directory."""
    venv = tmp_path_factory.mktemp("edge") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(ROOT)], check=True, env=env,
                   timeout=900)
    return venv / "bin"


def run(bin_dir: Path, *args, timeout: float = 120) -> Outcome:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("INCOP_PUBLIC_KEY", None)
    done = subprocess.run([str(bin_dir / "incop"), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout)
    return Outcome.of(args, done.returncode, done.stdout, done.stderr)


def test_the_base_install_has_no_training_side(edge):
    listed = subprocess.run([str(edge / "python"), "-m", "pip", "list", "--format=json"], capture_output=True,
                            text=True, check=True)
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"onnxruntime", "numpy", "cryptography"} <= installed
    assert not installed & TRAINING_SIDE, installed & TRAINING_SIDE


def _serve(edge: Path, registry: Path) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([str(edge / "incop"), "registry", "serve", str(registry), "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()  # "serving DIR at http://127.0.0.1:PORT (Ctrl-C stops)"
    assert " at http://127.0.0.1:" in line, line
    return server, line.split(" at ", 1)[1].split()[0]


def test_pull_predict_and_rollback_run_on_the_base_install(edge, tmp_path):
    keys, registry, dest = tmp_path / "keys", tmp_path / "registry", tmp_path / "device"
    assert run(edge, "keys", "generate", "--out", keys)[0] == 0  # signing needs only cryptography
    publisher = Path(sys.executable).with_name("incop")  # the full install publishes (it reads the ONNX)
    for seed in (0, 1):
        model = tiny_onnx(tmp_path / f"m{seed}.onnx", seed=seed)
        subprocess.run([str(publisher), "publish", str(model), "--registry", str(registry), "--name", "tiny",
                        "--key", str(keys / "incop.key")], check=True, capture_output=True, timeout=120)
    server, url = _serve(edge, registry)
    try:
        pulled = run(edge, "pull", "--registry", url, "--name", "tiny", "--dest", dest, "--public-key",
                     keys / "incop.pub")
        assert pulled[0] == 0 and "tiny v2" in pulled[1], pulled
        image = tmp_path / "x.npy"
        np.save(image, np.arange(64, dtype=np.uint8).reshape(8, 8))
        predicted = run(edge, "predict", image, "--model", dest, "--json")
        assert predicted[0] == 0 and 0 <= json.loads(predicted[1])["class"] < 10, predicted
        older = run(edge, "pull", "--registry", url, "--name", "tiny", "--dest", dest, "--version", "1",
                    "--allow-downgrade")
        assert older[0] == 0 and os.readlink(dest / "current") == "versions/1", older
        rolled = run(edge, "rollback", "--dest", dest)
        assert rolled[0] == 0 and os.readlink(dest / "current") == "versions/2", rolled
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.parametrize("args", [["pipeline"], ["prune", "--dataset", "synthetic"], ["export", "somerun"]],
                         ids=["pipeline", "prune", "export"])
def test_pipeline_commands_name_the_extra_to_install(edge, tmp_path, args):
    expect_user_error(run(edge, *args), "incop[pipeline]")
