"""The paper's comparison: the same model, data, seeds and schedule under every method (SPEC 5)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .config import RunConfig, validate
from .errors import ConfigError
from .fileio import write_json_atomic, write_text_atomic
from .report import markdown_table, totals
from .rundir import load_records
from .runner import run_pruning

FIXED = {"kind": "fixed-epochs"}
METHODS: dict[str, dict] = {  # prune-section overrides; SAP-based methods keep the base schedule's preset
    "lth": {"schedule": {"kind": "lth"}, "criterion": FIXED},
    "sap": {"criterion": FIXED},
    "accuracy": {"criterion": {"kind": "accuracy"}},
    "incop-if": {"criterion": {"kind": "incop-if"}},
    "incop-gf": {"criterion": {"kind": "incop-gf"}},
    "incop-if-auto": {"criterion": {"kind": "incop-if", "epsilon": "auto"}},
    "incop-gf-auto": {"criterion": {"kind": "incop-gf", "epsilon": "auto"}},
}
DEFAULT_METHODS = ("lth", "sap", "incop-if", "incop-gf", "accuracy")


def method_config(base: RunConfig, method: str, seed: int) -> RunConfig:
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose from: {', '.join(METHODS)}")
    raw = base.model_dump(mode="json")
    raw["seed"] = seed
    raw["prune"].update(METHODS[method])
    if "schedule" not in METHODS[method] and raw["prune"]["schedule"]["kind"] != "sap":
        raw["prune"]["schedule"] = {"kind": "sap"}
    return validate(raw)


def comparison_id(base: RunConfig, methods: list[str], seeds: list[int]) -> str:
    key = json.dumps([base.config_hash(), sorted(methods), sorted(seeds)])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _mean_std(values: list[float]) -> dict:
    array = np.array([v for v in values if v is not None], dtype=float)
    return {"mean": float(array.mean()) if array.size else None, "std": float(array.std()) if array.size else None}


def summarise(records: dict[str, dict[int, list[dict]]]) -> dict:
    """Per method, mean and std over seeds of the totals; ratios against SAP measured in the same comparison."""
    keys = ("retrain_epochs", "pruning_wall_seconds", "flow_seconds", "flow_share", "final_remaining_fraction", "final_test_acc")
    summary = {m: {k: _mean_std([totals(r)[k] for r in by_seed.values()]) for k in keys} for m, by_seed in records.items()}
    if "sap" in summary:
        sap = summary["sap"]
        for method, row in summary.items():
            row["epochs_ratio_to_sap"] = row["retrain_epochs"]["mean"] / sap["retrain_epochs"]["mean"]
            row["wall_ratio_to_sap"] = row["pruning_wall_seconds"]["mean"] / sap["pruning_wall_seconds"]["mean"]
            row["test_acc_diff_pp_vs_sap"] = 100 * (row["final_test_acc"]["mean"] - sap["final_test_acc"]["mean"])
    return summary


def summary_rows(summary: dict) -> list[dict]:
    fmt = lambda s, scale=1.0, d=2: "" if s["mean"] is None else f"{scale * s['mean']:.{d}f} ± {scale * s['std']:.{d}f}"  # noqa: E731
    return [{"method": m, "retrain epochs": fmt(s["retrain_epochs"], d=1), "pruning wall s": fmt(s["pruning_wall_seconds"], d=1),
             "flow share %": fmt(s["flow_share"], 100), "remaining %": fmt(s["final_remaining_fraction"], 100),
             "test acc %": fmt(s["final_test_acc"], 100),
             "epochs ÷ SAP": f"{s['epochs_ratio_to_sap']:.3f}" if "epochs_ratio_to_sap" in s else "",
             "wall ÷ SAP": f"{s['wall_ratio_to_sap']:.3f}" if "wall_ratio_to_sap" in s else "",
             "acc − SAP pp": f"{s['test_acc_diff_pp_vs_sap']:+.2f}" if "test_acc_diff_pp_vs_sap" in s else ""}
            for m, s in summary.items()]


def run_compare(base: RunConfig, methods: list[str], seeds: list[int], runs_root: Path,
                out: Optional[Path] = None, on_event: Callable[[str, dict], None] = lambda k, i: None) -> Path:
    """Run (or reuse) every method x seed, then write comparison.json, comparison.md and the plots."""
    from .plots import comparison_plots

    out = Path(out) if out else Path(runs_root) / "compare" / comparison_id(base, methods, seeds)
    records: dict[str, dict[int, list[dict]]] = {m: {} for m in methods}
    for seed in seeds:
        for method in methods:
            on_event("method", {"method": method, "seed": seed})
            run = run_pruning(method_config(base, method, seed), runs_root, on_event=on_event)
            records[method][seed] = load_records(run)
    summary = summarise(records)
    write_json_atomic(out / "comparison.json", {"base_config": base.model_dump(mode="json"), "methods": methods,
                                                "seeds": seeds, "summary": summary, "records": records})
    plots = comparison_plots(records, out)
    write_text_atomic(out / "comparison.md", "# Comparison\n\n" + markdown_table(summary_rows(summary)) + "\n"
                      + "".join(f"![{p.stem}]({p.name})\n" for p in plots))
    return out
