"""`incop compare`: the paired statistics on hand numbers, the method configs, and one tiny end-to-end run."""

import importlib.util
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from incop_core.cli import main as cli
from incop_core.imp import stages
from incop_core.cli.main import app
from incop_core.experiments.compare import run_compare
from incop_core.experiments.methods import DEFAULT_METHODS, matched_epochs, method_names, method_raw, plan
from incop_core.experiments.compare_stats import paired_pp, remaining_spread_pp, summarise, t975, t_interval
from incop_core.consistency.distances import DISTANCES
from incop_core.foundations.errors import ConfigError
from flows.params import default_run
from tests.support.paths import ROOT

TINY = ["--dataset", "synthetic", "--set", "data.synthetic_size=96", "--set", "data.image_size=16",
        "--set", "model.width=8", "--iterations", "2", "--max-epochs", "2", "--set", "finetune_epochs=2",
        "--set", "prune.probe_size=32"]
FOLLOW = [{"*": 80}, {"*": 50}]


def t_cdf(x: float, df: int) -> float:
    """P(T <= x) by Simpson's rule over the Student t density, to check the quantiles independently."""
    grid = np.linspace(0.0, x, 20001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    density = np.exp(log_c - (df + 1) / 2 * np.log1p(grid ** 2 / df))
    h = grid[1] - grid[0]
    return 0.5 + h / 3 * (density[0] + density[-1] + 4 * density[1:-1:2].sum() + 2 * density[2:-1:2].sum())


@pytest.mark.parametrize("df", [1, 2, 4, 9, 29, 30, 31, 45, 120])
def test_t_quantile_is_the_975_point_of_the_student_t(df):
    assert t_cdf(t975(df), df) == pytest.approx(0.975, abs=2e-5)


def test_t_interval_on_hand_numbers():
    s = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])  # sd sqrt(2.5), se 0.7071, t_4 = 2.7764
    assert s["mean"] == 3.0 and s["n"] == 5
    assert (s["low"] == pytest.approx(3 - 2.7764 * math.sqrt(2.5 / 5))
            and s["high"] == pytest.approx(3 + 1.96317, abs=1e-4))
    assert t_interval([0.7]) == {"mean": 0.7, "low": None, "high": None, "n": 1, "values": [0.7]}
    assert t_interval([])["mean"] is None


def rec(t: int, remaining: float, epochs: float, acc: float) -> dict:
    return {"iteration": t, "remaining_fraction": remaining, "epochs": epochs, "test_acc": acc,
            "wall_seconds": 10.0 * epochs + 1, "flow_seconds": 0.5 if t else 0.0}


def run_records(accs: list[float], epochs: float, path=(1.0, 0.6, 0.3)) -> dict:
    return {seed: [rec(t, r, epochs if t else 5, acc) for t, r in enumerate(path)] for seed, acc in enumerate(accs)}


def test_summary_pairs_each_method_with_sap_of_its_rewind_and_incop_with_its_matched_budget():
    records = {"sap": run_records([0.80, 0.82, 0.84], 4), "incop-kl": run_records([0.81, 0.82, 0.86], 1),
               "matched-incop-kl": run_records([0.79, 0.80, 0.83], 1),
               "sap@previous": run_records([0.70, 0.70, 0.70], 2),
               "incop-kl@previous": run_records([0.71, 0.71, 0.71], 1, path=(1.0, 0.6, 0.301))}
    s = summarise(records)
    assert s["incop-kl"]["epochs_ratio_to_source"] == pytest.approx(0.25)
    assert s["incop-kl@previous"]["epochs_ratio_to_source"] == pytest.approx(0.5), "SAP of the same rewind"
    vs_sap = s["incop-kl"]["test_acc_pp_vs_source"]
    assert vs_sap["values"] == pytest.approx([1.0, 0.0, 2.0]) and vs_sap["mean"] == pytest.approx(1.0)
    assert vs_sap["low"] == pytest.approx(1 - t975(2) * 1 / math.sqrt(3))
    assert s["incop-kl"]["test_acc_pp_vs_matched"]["values"] == pytest.approx([2.0, 2.0, 3.0])
    assert s["incop-kl@previous"]["test_acc_pp_vs_source"]["values"] == pytest.approx([1.0, 1.0, 1.0])
    assert "test_acc_pp_vs_matched" not in s["incop-kl@previous"] and "test_acc_pp_vs_matched" not in s["sap"]
    assert s["incop-kl"]["remaining_gap_pp_vs_source"] == 0.0
    assert s["incop-kl@previous"]["remaining_gap_pp_vs_source"] == pytest.approx(0.1)
    assert s["sap"]["final_remaining_pct"] == pytest.approx(30.0)
    assert remaining_spread_pp(records, list(records)) == pytest.approx(0.1)
    assert paired_pp(records, "sap", "sap@previous")["values"] == pytest.approx([10.0, 12.0, 14.0])


def test_remaining_spread_counts_a_missing_iteration_as_different():
    short = {0: [rec(0, 1.0, 1, 0.5), rec(1, 0.5, 1, 0.5)]}
    long = {0: [rec(0, 1.0, 1, 0.5), rec(1, 0.5, 1, 0.5), rec(2, 0.2, 1, 0.5)]}
    assert remaining_spread_pp({"a": long, "b": long}, ["a", "b"]) == 0.0
    assert remaining_spread_pp({"a": short, "b": long}, ["a", "b"]) == math.inf


def test_method_config_sets_follow_rewind_and_matched_epochs(tiny_config):
    base = tiny_config(schedule={"kind": "sap", "p": 1.0, "q": 2.0})
    raw = method_raw(base, "incop-kl", 3, "previous", FOLLOW)
    assert raw["seed"] == 3 and raw["prune"]["follow"] == FOLLOW and raw["prune"]["rewind"] == "previous"
    assert raw["prune"]["criterion"] == {"kind": "incop", "distance": "kl", "epsilon": "auto"}
    assert raw["prune"]["schedule"]["q"] == 2.0, "SAP-based methods keep the base preset"
    before = base.model_dump(mode="json")
    source = method_raw(base, "sap", 3)
    assert source["prune"].get("follow") is None and source["prune"].get("rewind", "finetuned") == "finetuned"
    assert method_raw(base, "accuracy", 0)["prune"]["criterion"] == {"kind": "accuracy", "tolerance": "auto"}
    assert method_raw(base, "lth", 0)["prune"]["schedule"]["kind"] == "lth"
    incop = {0: [rec(0, 1.0, 5, 0.8), rec(1, 0.6, 0.5, 0.8), rec(2, 0.3, 2.0, 0.8)]}[0]
    assert matched_epochs(incop) == pytest.approx(1.25)
    matched = method_raw(base, "matched-incop-kl", 0, "finetuned", FOLLOW, matched_epochs(incop))
    assert matched["prune"]["criterion"] == {"kind": "fixed-epochs", "epochs": 1.25}
    assert base.model_dump(mode="json") == before, "the base config is not mutated"
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        method_raw(base, "nope", 0)


def test_plan_runs_the_source_first_sap_under_every_rewind_and_matched_after_its_incop():
    order = plan(["incop-kl", "matched-incop-kl", "accuracy"], ["finetuned", "previous"])
    assert order == [("sap", "finetuned"), ("incop-kl", "finetuned"), ("accuracy", "finetuned"),
                     ("sap", "previous"), ("incop-kl", "previous"), ("accuracy", "previous"),
                     ("matched-incop-kl", "finetuned"), ("matched-incop-kl", "previous")]
    with pytest.raises(ConfigError, match="add that method"):
        plan(["matched-incop-kl"], ["finetuned"])
    with pytest.raises(ConfigError, match="unknown rewinds"):
        plan(["sap"], ["latest"])
    assert ({f"incop-{d}" for d in DISTANCES.names()} | {"incop-if", "incop-gf", "matched-incop-kl"}
            <= set(method_names()))
    assert cli.DISTANCE_NAMES.split(", ") == DISTANCES.names()
    assert cli.COMPARE_METHODS.split(",") == list(DEFAULT_METHODS) and set(DEFAULT_METHODS) <= set(method_names())


def test_compare_follows_sap_trajectory_under_both_rewinds_matches_budgets_and_reuses_runs(tmp_path, monkeypatch):
    args = ["compare", *TINY, "--methods", "lth,incop-if,matched-incop-if,final-only,one-shot", "--rewinds",
            "finetuned,previous", "--seeds", "0", "--runs-dir", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = next((tmp_path / "compare").iterdir())
    names = {p.name for p in out.iterdir()}
    assert {"comparison.json", "comparison.md", "test_accuracy.png", "epochs_per_iteration.png",
            "remaining_weights.png", "cumulative_wall_time.png"} <= names
    assert all((out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names if n.endswith(".png"))
    data = json.loads((out / "comparison.json").read_text())
    followers = ["sap", "incop-if", "final-only", "sap@previous", "incop-if@previous", "matched-incop-if",
                 "matched-incop-if@previous"]
    assert data["source"] == "sap"
    assert data["labels"] == ["sap", "lth", "incop-if", "final-only", "one-shot", "sap@previous", "lth@previous",
                              "incop-if@previous", "matched-incop-if", "matched-incop-if@previous"], \
        "final-only, one-shot: once"
    assert data["identical_remaining"] == {"max_abs_diff_pp": 0.0, "labels": followers, "final_max_abs_diff_pp": 0.0}, \
        "lth keeps its own schedule; one-shot reaches the same final survivors in one step"
    records, summary = data["records"], data["summary"]
    assert [t["*"] for t in data["trajectories"]["0"]] == [r["remaining"] for r in records["sap"]["0"][1:]]
    assert all(len(records[m]["0"]) == (2 if m == "one-shot" else 3) for m in records)
    assert records["one-shot"]["0"][1]["remaining"] == records["sap"]["0"][-1]["remaining"]
    assert [r["epochs"] for r in records["final-only"]["0"][1:]] == [0, 2], "0 intermediate epochs, the final in full"
    assert [r["epochs"] for r in records["one-shot"]["0"][1:]] == [2]
    assert summary["sap"]["retrain_epochs"]["mean"] == summary["sap@previous"]["retrain_epochs"]["mean"] == 4
    for rewind in ("", "@previous"):
        assert summary["matched-incop-if" + rewind]["retrain_epochs"]["mean"] == pytest.approx(
            summary["incop-if" + rewind]["retrain_epochs"]["mean"]), "same total retraining budget"
        for kind in ("matched", "final_only", "one_shot"):
            assert summary["incop-if" + rewind][f"test_acc_pp_vs_{kind}"]["n"] == 1
    assert summary["sap"]["test_acc_pp_vs_final_only"]["n"] == 1, "does intermediate retraining matter at all?"
    assert "test_acc_pp_vs_matched" not in summary["sap"]
    configs = [json.loads(p.read_text()) for p in tmp_path.glob("*/config.json")]
    assert len(configs) == 10  # sap, lth, incop-if under two rewinds, matched-incop-if under two, final-only, one-shot
    assert sum(c["prune"]["follow"] == data["trajectories"]["0"] for c in configs) == 6
    assert sum(c["prune"]["follow"] == data["trajectories"]["0"][-1:] for c in configs) == 1
    assert sorted(c["prune"]["rewind"] for c in configs) == ["finetuned"] * 6 + ["previous"] * 4
    table = (out / "comparison.md").read_text()
    assert all(f"| {name} |" in table for name in data["labels"]) and "largest difference" in table

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(stages, "train", no_training)
    assert CliRunner().invoke(app, args).exit_code == 0


def load_bench():
    path = ROOT / "bench" / "compare_fashion.py"
    spec = importlib.util.spec_from_file_location("compare_fashion", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_figures_judge_each_incop_method_per_rewind_and_read_discrimination_defensively(tmp_path):
    bench = load_bench()
    path = (0.1, 0.05, 0.02, 0.01)
    records = {"sap": run_records([0.80, 0.82, 0.84], 10, path), "incop-kl": run_records([0.805, 0.82, 0.84], 2, path),
               "matched-incop-kl": run_records([0.79, 0.81, 0.83], 2, path),
               "final-only": run_records([0.80, 0.82, 0.84], 10 / 3, path),
               "one-shot": run_records([0.78, 0.80, 0.80], 10, (1.0, 0.01)),
               "sap@previous": run_records([0.80, 0.80, 0.80], 10, path),
               "incop-kl@previous": run_records([0.70, 0.71, 0.72], 2, path)}
    (tmp_path / "d.json").write_text(json.dumps(
        {"figures": {"per_signal": {"kl": {"auroc": {"mean": 0.97}, "spearman": 0.8}}}}))
    disc = bench.discrimination(tmp_path / "d.json")
    assert disc == {"kl": {"auroc": 0.97, "spearman": 0.8}} and bench.discrimination(tmp_path / "none.json") == {}
    summary = summarise(records)
    assert bench.intermediate_matters(summary, "sap") is False, "sap and final-only end equal on every seed"
    fig = bench.figures({"summary": summary, "rewinds": ["finetuned", "previous"]}, ["kl"], disc)
    kl, previous = fig["incop-kl"], fig["incop-kl@previous"]
    assert kl["P1_epochs_ratio"] == pytest.approx(0.2) and kl["discrimination_auroc"] == 0.97
    assert (kl["epochs_ratio_to_final_only"] == pytest.approx(0.6)
            and kl["P1d_vs_one_shot_pp"]["mean"] == pytest.approx((2.5 + 2.0 + 4.0) / 3))
    assert kl["meets"] == {"P1": True, "P1b": True, "P1c": True, "identical": True, "deep": True, "P2": True,
                           "P3": True}
    assert kl["P1b_vs_matched_pp"]["mean"] == pytest.approx(3.5 / 3) and kl["final_remaining_pct"] == pytest.approx(1.0)
    assert (previous["meets"]["P1"] is False and previous["meets"]["P1b"] is None
            and previous["P1b_vs_matched_pp"] is None)
    assert previous["P1c_vs_final_only_pp"]["mean"] == pytest.approx(-100 * (0.82 - 0.71)), \
        "paired with the one final-only"
    table = bench.render(fig)
    assert "| incop-kl | 0.200 |" in table and "yes/yes/yes/yes/yes" in table
    # where intermediate retraining matters (the source beats final-only), InCoP must beat final-only too
    matters = {**records, "final-only": run_records([0.70, 0.73, 0.74], 10 / 3, path)}
    summary = summarise(matters)
    assert bench.intermediate_matters(summary, "sap") is True
    fig = bench.figures({"summary": summary, "rewinds": ["finetuned"]}, ["kl"], disc)
    assert fig["incop-kl"]["meets"]["P1c"] is True and fig["incop-kl"]["intermediate_retraining_matters"] is True
    behind = {**matters, "incop-kl": run_records([0.70, 0.74, 0.73], 2, path)}
    assert bench.figures({"summary": summarise(behind), "rewinds": ["finetuned"]},
                         ["kl"], disc)["incop-kl"]["meets"]["P1c"] is False
    assert bench.method_list(["kl", "cka"], ["kl"]) == ["accuracy", "final-only", "one-shot", "incop-kl", "incop-cka",
                                                        "matched-incop-kl"]
    quick = bench.parse_args(["--quick", "--signals", "kl,cka"])
    assert quick.seeds == "0" and quick.iterations == 2 and quick.matched == ["kl"]
    full = bench.base_config(bench.parse_args([]))
    assert (full.data.train_subset, full.data.val_size, full.data.test_subset) == (4000, 2000, None)
    assert (full.prune.iterations, full.prune.max_epochs, full.prune.schedule.q,
            full.finetune_epochs) == (6, 10, 2.0, 15)
    structured = bench.base_config(bench.parse_args(["--structured"]))
    main = default_run()
    assert structured.prune.iterations >= 4 and structured.prune.max_epochs == main.prune.max_epochs
    assert (structured.prune.scope, structured.prune.round_to, structured.prune.schedule) == (
        main.prune.scope, main.prune.round_to, main.prune.schedule), "the main job's own configuration"
    assert structured.data == main.data and structured.finetune_epochs == main.finetune_epochs


def test_compare_rejects_unknown_methods_before_running(tiny_config):
    with pytest.raises(ConfigError, match="unknown method"):
        run_compare(tiny_config(), ["nope"], [0], "unused")
