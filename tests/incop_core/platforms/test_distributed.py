"""torchrun with 2 CPU processes (gloo): the run's masks and records match a single process's in shape and sparsity."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from incop_core.pruning.masks import Mask
from incop_core.imp.rundir import load_records, read_status

pytestmark = pytest.mark.slow
ARGS = ["prune", "--dataset", "synthetic", "--set", "data.synthetic_size=128", "--set", "data.image_size=16",
        "--set", "model.width=8", "--finetune-epochs", "1", "--iterations", "2", "--max-epochs", "2",
        "--schedule", "lth", "--criterion", "incop-if", "--set", "prune.probe_size=32", "--device", "cpu"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, runs_dir):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    done = subprocess.run([*cmd, *ARGS, "--runs-dir", str(runs_dir)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return next(p.parent for p in runs_dir.glob("*/config.json"))


def test_two_gloo_processes_match_a_single_process_run(tmp_path):
    single = _run([sys.executable, "-m", "incop_core.cli.main"], tmp_path / "single")
    multi = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_port()),
                  "-m", "incop_core.cli.main"], tmp_path / "multi")
    assert read_status(multi)["state"] == "finished"
    one, two = load_records(single), load_records(multi)
    assert [r["iteration"] for r in two] == [0, 1, 2]
    assert [r["remaining"] for r in two] == [r["remaining"] for r in one]  # LTH: exact global counts
    for a, b in zip(one, two):  # the split over layers follows magnitudes, which differ in float reduction order only
        assert all(abs(a["remaining_per_layer"][n] - b["remaining_per_layer"][n])
                   <= max(2, 0.01 * b["remaining_per_layer"][n])
                   for n in b["remaining_per_layer"])
    assert set(two[1]) == set(one[1])  # the same record fields
    for t in (1, 2):
        a = Mask.load(single / "iterations" / f"{t:04d}" / "mask.pt")
        b = Mask.load(multi / "iterations" / f"{t:04d}" / "mask.pt")
        assert {n: v.shape for n, v in a.tensors.items()} == {n: v.shape for n, v in b.tensors.items()}
        weights = torch.load(multi / "iterations" / f"{t:04d}" / "weights.pt", weights_only=True)
        assert all(torch.all(weights[n][~m] == 0) for n, m in b.tensors.items())
    assert not list((tmp_path / "multi").glob("*/iterations/*.tmp"))  # rank 0 alone wrote, and completely
    assert json.loads((multi / "records.json").read_text())[-1]["iteration"] == 2
