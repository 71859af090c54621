"""`incop compare` on tiny data: every file and plot, the expected rows, and reuse of finished runs."""

import json

import pytest
from typer.testing import CliRunner

from incop_core import runner
from incop_core.cli import app
from incop_core.compare import METHODS, method_config, run_compare
from incop_core.errors import ConfigError

TINY = ["--dataset", "synthetic", "--set", "data.synthetic_size=96", "--set", "data.image_size=16",
        "--set", "model.width=8", "--iterations", "2", "--max-epochs", "2", "--set", "finetune_epochs=2",
        "--set", "prune.probe_size=32"]
METHODS_ARG = "lth,sap,incop-if,incop-gf,accuracy"


def test_compare_writes_every_file_with_one_row_per_method_and_reuses_runs(tmp_path, monkeypatch):
    result = CliRunner().invoke(app, ["compare", *TINY, "--methods", METHODS_ARG, "--seeds", "0,1",
                                      "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = next((tmp_path / "compare").iterdir())
    names = {p.name for p in out.iterdir()}
    assert {"comparison.json", "comparison.md", "test_accuracy.png", "epochs_per_iteration.png",
            "remaining_weights.png", "cumulative_wall_time.png"} <= names
    assert all((out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names if n.endswith(".png"))
    data = json.loads((out / "comparison.json").read_text())
    assert sorted(data["summary"]) == sorted(METHODS_ARG.split(",")) and data["methods"] == METHODS_ARG.split(",")
    assert all(len(data["records"][m][s]) == 3 for m in data["records"] for s in ("0", "1"))
    assert data["summary"]["sap"]["retrain_epochs"]["mean"] == 4  # fixed epochs: 2 iterations x 2 epochs
    table = (out / "comparison.md").read_text()
    assert all(f"| {m} |" in table for m in METHODS_ARG.split(","))
    assert len(list(tmp_path.glob("*/config.json"))) == 10  # 5 methods x 2 seeds

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(runner, "train", no_training)
    again = CliRunner().invoke(app, ["compare", *TINY, "--methods", METHODS_ARG, "--seeds", "0,1",
                                     "--runs-dir", str(tmp_path)])
    assert again.exit_code == 0, again.output


def test_methods_share_the_base_schedule_preset_except_lth(tiny_config):
    base = tiny_config(schedule={"kind": "sap", "p": 1.0, "q": 2.0})
    for method in METHODS:
        schedule = method_config(base, method, 3).prune.schedule
        assert (schedule.kind, getattr(schedule, "q", None)) == (("lth", None) if method == "lth" else ("sap", 2.0))
    with pytest.raises(ConfigError, match="unknown method"):
        run_compare(base, ["nope"], [0], "unused")
