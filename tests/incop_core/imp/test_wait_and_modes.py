"""Issue #13, item 5: a second run of the same config waits for the first and reuses its result; outputs are
readable by the group (0644 under umask 022)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from incop_core.imp import paths
from incop_core.imp.config import validate
from incop_core.foundations.errors import RunLocked
from incop_core.foundations.fileio import copy_folder_atomic, read_json, save_torch_atomic, write_json_atomic
from incop_core.imp.rundir import finished_iterations, open_run, read_status
from incop_core.imp.runlock import locked
from incop_core.imp.runner import run_pruning

RAW = {"data": {"name": "synthetic", "synthetic_size": 64, "image_size": 16}, "model": {"width": 8},
       "finetune_epochs": 1,
       "prune": {"iterations": 1, "max_epochs": 1, "probe_size": 32, "probe_batch": 16,
                 "criterion": {"kind": "fixed-epochs"}}}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# The first process: runs the config, and pauses inside its run lock (at the fine-tuning stage) until told to go on.
FIRST = """
import json, sys
from pathlib import Path
from incop_core.imp import paths
from incop_core.imp.config import validate
from incop_core.imp.runner import run_pruning

def on_event(kind, info):
    if kind == "stage" and info["name"] == "finetune":
        print("holding", flush=True)
        sys.stdin.readline()

run_pruning(validate(json.loads(sys.argv[1])), Path(sys.argv[2]), on_event=on_event)
print("done", flush=True)
"""

HOLDER = """
import sys
from pathlib import Path
from incop_core.imp.runlock import locked

with locked(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def umask_022():
    before = os.umask(0o022)
    yield
    os.umask(before)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_second_run_of_the_same_config_waits_then_reuses_the_result(tmp_path, capsys, umask_022):
    config, root = validate(RAW), tmp_path / "runs"
    first = subprocess.Popen([sys.executable, "-c", FIRST, json.dumps(RAW), str(root)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=ENV)
    events, outcome = [], {}
    try:
        assert first.stdout.readline().strip() == "holding"
        second = threading.Thread(target=lambda: outcome.update(
            run=run_pruning(config, root, on_event=lambda kind, info: events.append((kind, info)), lock_wait=300)))
        second.start()
        printed = []
        _wait_for(lambda: printed.append(capsys.readouterr().out) or "waiting for run" in "".join(printed), 60,
                  "the second run to wait")
        line = "".join(printed)
        assert f"waiting for run {config.config_hash()} held by pid {first.pid}" in line
        assert second.is_alive() and read_status(paths.run_dir(root, config.config_hash()))["state"] == "running"
        first.stdin.write("\n")
        first.stdin.flush()
        second.join(300)
        assert not second.is_alive()
    finally:
        first.stdin.close()
        assert first.wait(timeout=300) == 0
        first.stdout.close()
    run = outcome["run"]
    assert read_status(run)["state"] == "finished" and finished_iterations(run) == [0, 1]
    assert events == [("finished", {"run": str(run), "resumed": True})]  # nothing recomputed, the result reused
    outputs = {k: m for k, m in _modes(run).items() if k != "."}
    assert outputs and all(m == (0o755 if (run / k).is_dir() else 0o644) for k, m in outputs.items()), outputs


def test_waiting_is_bounded_and_then_names_the_holder(tmp_path):
    run = open_run(validate(RAW), tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=ENV)
    told = []
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with pytest.raises(RunLocked, match=f"worked on by pid {holder.pid} \\(waited"):
            with locked(run, wait=0.6, poll=0.05, notify=told.append):
                pass
        assert 0.5 < time.monotonic() - start < 10 and len(told) == 1 and f"pid {holder.pid}" in told[0]
        with pytest.raises(RunLocked):  # no wait (the CLI): refused at once, nothing printed
            with locked(run, notify=told.append):
                pass
        assert len(told) == 1
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
        holder.stdout.close()
    with locked(run, wait=5):  # the holder is gone: taken at once
        assert (run / paths.LOCK).read_text() == f"pid {os.getpid()}"


def test_atomic_writes_honour_the_umask(tmp_path, umask_022):
    write_json_atomic(tmp_path / "a" / "x.json", {"k": 1})
    save_torch_atomic(tmp_path / "a" / "w.pt", {"k": 1})
    copy_folder_atomic(tmp_path / "a", tmp_path / "b")
    assert read_json(tmp_path / "b" / "x.json") == {"k": 1}
    assert {k: oct(m) for k, m in _modes(tmp_path).items() if k != "."} == {
        "a": "0o755", "a/x.json": "0o644", "a/w.pt": "0o644", "b": "0o755", "b/x.json": "0o644", "b/w.pt": "0o644"}
    os.umask(0o077)
    write_json_atomic(tmp_path / "private.json", {})
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    assert not list(tmp_path.rglob("*.tmp"))
