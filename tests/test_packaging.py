"""What can be checked of the Dockerfile and prefect.yaml without a Docker engine or work pools."""

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_prefect_yaml_deployments_point_at_real_flows_on_their_pools():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert {d["work_pool"]["name"] for d in deployments.values()} == {"gpu", "cpu"}
    assert (deployments["gpu-stages"]["work_pool"]["name"] == "gpu"
            and deployments["cpu-stages"]["work_pool"]["name"] == "cpu")
    for d in deployments.values():
        path, name = d["entrypoint"].split(":")
        flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)
        assert hasattr(flow, "serve") and flow.name  # a Prefect flow object
    from flows.pools import CPU_DEPLOYMENT, GPU_DEPLOYMENT
    assert GPU_DEPLOYMENT == "gpu-stages/gpu-stages" and CPU_DEPLOYMENT == "cpu-stages/cpu-stages"
    schedule = deployments["nightly-pools"]["schedules"][0]
    assert schedule["cron"] and schedule["timezone"]


def test_dockerfile_runs_as_a_non_root_user_and_serves_by_default():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{BASE\}", text, re.M) and "python:3.11" in text
    assert re.search(r"^USER incop$", text, re.M)
    assert 'ENTRYPOINT ["incop"]' in text and 'CMD ["serve"]' in text
    assert "torch==2.14.1" in text and 'pip install --no-cache-dir ".[pipeline]"' in text
    edge = text[text.index("AS edge"):text.index("AS worker")]
    runs = [line for line in edge.splitlines() if line.startswith("RUN ")]
    assert any("pip install --no-cache-dir . " in line for line in runs) and not any("torch" in line for line in runs)
    assert text.rindex("FROM ") > text.index("AS edge")  # the worker is the last stage: plain `docker build` gives it


@pytest.mark.slow
def test_the_dockerfile_install_commands_give_a_working_incop_in_a_fresh_virtualenv(tmp_path):
    """Runs the image's install steps in a fresh venv: torch (from this machine's wheels instead of the
    index URL the image uses), then the project, then `incop --help` exactly as the Dockerfile does."""
    venv = tmp_path / "venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-cache-dir"]
        env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        subprocess.run([*pip, "torch==2.14.1", "torchvision==0.29.1"], check=True, env=env, timeout=900)
        subprocess.run([*pip, f"{ROOT}[pipeline]"], check=True, env=env, timeout=900)
        done = subprocess.run([str(venv / "bin" / "incop"), "--help"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "prune" in done.stdout and "pull" in done.stdout
    finally:  # the venv holds several GB (torch with its CUDA libraries): pytest keeps the last 3 temp trees
        shutil.rmtree(venv, ignore_errors=True)
