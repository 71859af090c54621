"""Commands beside the core register through the `incop.commands` entry points: loading them stays cheap, and a
command whose extra is not installed says which one to install."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.support.bad_inputs import Outcome, expect_user_error
from incop_core.foundations.errors import explain

ROOT = Path(__file__).resolve().parents[1]
TRAINING_SIDE = ("torch", "torchvision", "onnx", "prefect", "matplotlib")  # pydantic: typer needs it too
BASE_INSTALL = f"""
import sys
for name in {TRAINING_SIDE!r}:
    sys.modules[name] = None  # as on an edge device: `import torch` fails
from incop_core.cli.main import main
main()
"""


def test_each_package_declares_its_commands():
    declared = {e.name: e.value for e in entry_points(group="incop.commands")}
    assert declared == {"export": "deploy.export.cli:register", "bench": "deploy.measure.cli:register",
                        "registry": "deploy.edge.cli:register", "pipeline": "flows.cli:register"}


def test_loading_every_command_imports_no_heavy_module():
    script = ("import sys; from incop_core.cli.main import app; "
              "print(len(app.registered_commands), len(app.registered_groups), "
              f"sorted(m for m in {TRAINING_SIDE + ('onnxruntime', 'numpy')!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    commands, groups, loaded = done.stdout.split(" ", 2)
    assert int(commands) >= 12 and int(groups) >= 2 and loaded.strip() == "[]", done.stderr


@pytest.mark.parametrize("missing", ["torch", "torch.nn", "onnx", "prefect"])
def test_a_missing_training_module_names_the_extra(missing):
    sentence = explain(ModuleNotFoundError(f"No module named {missing!r}", name=missing))
    assert sentence == (f"this command needs the pipeline extra ({missing.split('.')[0]} is not installed): "
                        "pip install 'incop[pipeline]'")


def test_another_missing_module_is_still_a_bug():
    assert explain(ModuleNotFoundError("No module named 'yaml'", name="yaml")) is None


@pytest.mark.parametrize("args", [["export", "somerun"], ["bench", "model.onnx"], ["prune", "--dataset", "synthetic"],
                                  ["compare", "--dataset", "synthetic"], ["pipeline"], ["runs"]],
                         ids=["export", "bench", "prune", "compare", "pipeline", "runs"])
def test_a_command_without_its_extra_says_which_to_install(tmp_path, args):
    done = subprocess.run([sys.executable, "-c", BASE_INSTALL, *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    expect_user_error(Outcome.of(args, done.returncode, done.stdout, done.stderr), "incop[pipeline]")
