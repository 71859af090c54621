"""The paper's comparison, made fair (docs/algorithms.md §4.6): the same model, data, seeds and sparsity trajectory
for every method.

Per seed, SAP with the default rewind runs first; its remaining weights per iteration become `prune.follow`
for every other method and rewind, so they differ only in when they stop retraining. A budget-matched
method (`matched-incop-X`) retrains fixed epochs equal to incop-X's mean per iteration, same seed and rewind.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Optional

from .compare_stats import DEFAULT_REWIND, MATCHED, Records, label, remaining_spread_pp, summarise, summary_rows
from .config import RunConfig, validate
from .distances import DISTANCES
from .errors import ConfigError
from .fileio import write_json_atomic, write_text_atomic
from .report import markdown_table, totals
from .rundir import load_records
from .runner import run_pruning
from .trajectory import trajectory

FIXED = {"kind": "fixed-epochs"}
SOURCE = "sap"  # the trajectory source, run with the default rewind
OWN_SCHEDULE = {"lth"}  # a schedule baseline: it keeps its own trajectory (following SAP's would make it SAP)
REWINDS = ("finetuned", "previous")
LEGACY: dict[str, dict] = {  # prune-section overrides; SAP-based methods keep the base schedule's preset
    "lth": {"schedule": {"kind": "lth"}, "criterion": FIXED},
    "sap": {"criterion": FIXED},
    "accuracy": {"criterion": {"kind": "accuracy", "tolerance": "auto"}},
    "incop-if": {"criterion": {"kind": "incop-if"}},
    "incop-gf": {"criterion": {"kind": "incop-gf"}},
    "incop-if-auto": {"criterion": {"kind": "incop-if", "epsilon": "auto"}},
    "incop-gf-auto": {"criterion": {"kind": "incop-gf", "epsilon": "auto"}},
}
DEFAULT_METHODS = ("sap", "accuracy", "incop-disagreement", "matched-incop-disagreement")


def incop_methods() -> list[str]:
    return [m for m in LEGACY if m.startswith("incop-")] + [f"incop-{d}" for d in DISTANCES.names()]


def method_names() -> list[str]:
    return [m for m in LEGACY if not m.startswith("incop-")] + incop_methods() + [MATCHED + m for m in incop_methods()]


def overrides(method: str) -> dict:
    """The prune-section settings that make `method` (before follow, rewind and matched epochs)."""
    if method in LEGACY:
        return LEGACY[method]
    if method.startswith("incop-") and method[len("incop-"):] in DISTANCES.names():
        return {"criterion": {"kind": "incop", "distance": method[len("incop-"):], "epsilon": "auto"}}
    if method.startswith(MATCHED) and method[len(MATCHED):] in incop_methods():
        return {"criterion": FIXED}
    raise ConfigError(f"unknown method {method!r}; choose from: {', '.join(method_names())}")


def method_raw(base: RunConfig, method: str, seed: int, rewind: str = DEFAULT_REWIND,
               follow: Optional[list[dict[str, int]]] = None, epochs: Optional[float] = None) -> dict:
    """The raw run config of one method: base settings, the method's plug-ins, then rewind, follow and epochs."""
    raw = base.model_dump(mode="json")
    raw["seed"] = seed
    prune = raw["prune"]
    prune.update(json.loads(json.dumps(overrides(method))))
    if method not in OWN_SCHEDULE and prune["schedule"]["kind"] != "sap":
        prune["schedule"] = {"kind": "sap"}
    prune["rewind"] = rewind
    if follow is not None:
        prune["follow"] = follow
    if epochs is not None:
        prune["criterion"]["epochs"] = epochs
    return raw


def method_config(base: RunConfig, method: str, seed: int, rewind: str = DEFAULT_REWIND,
                  follow: Optional[list[dict[str, int]]] = None, epochs: Optional[float] = None) -> RunConfig:
    return validate(method_raw(base, method, seed, rewind, follow, epochs))


def matched_epochs(records: list[dict]) -> float:
    """Fixed epochs per iteration giving the same total retraining as an InCoP run's records."""
    t = totals(records)
    if not t["iterations"]:
        raise ConfigError("the InCoP run to match finished no pruning iteration, so there is no budget to match; "
                          "raise prune.iterations")
    return t["retrain_epochs"] / t["iterations"]


def plan(methods: list[str], rewinds: list[str]) -> list[tuple[str, str]]:
    """(method, rewind) in run order for one seed: the trajectory source first, budget-matched methods last.
    SAP runs under every rewind, as the reference of the methods beside it."""
    methods = list(dict.fromkeys([SOURCE, *methods]))
    for method in methods:
        overrides(method)
        if method.startswith(MATCHED) and method[len(MATCHED):] not in methods:
            raise ConfigError(f"{method} matches the budget of {method[len(MATCHED):]}; add that method to --methods too")
    unknown = [r for r in rewinds if r not in REWINDS]
    if unknown or not rewinds:
        raise ConfigError(f"unknown rewinds {unknown or rewinds}; choose from: {', '.join(REWINDS)}")
    order = [(SOURCE, DEFAULT_REWIND)]
    for matched in (False, True):
        order += [(m, r) for r in rewinds for m in methods if m.startswith(MATCHED) == matched and (m, r) != order[0]]
    return order


def comparison_id(base: RunConfig, methods: list[str], seeds: list[int], rewinds: tuple[str, ...] = (DEFAULT_REWIND,)) -> str:
    key = json.dumps([base.config_hash(), sorted(methods), sorted(seeds), sorted(rewinds)])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def run_seed(base: RunConfig, order: list[tuple[str, str]], seed: int, runs_root: Path,
             on_event: Callable[[str, dict], None]) -> tuple[dict[str, list[dict]], list[dict[str, int]]]:
    """Run (or reuse) every (method, rewind) of one seed; returns records per label and the followed trajectory."""
    records: dict[str, list[dict]] = {}
    follow: list[dict[str, int]] = []
    for method, rewind in order:
        name = label(method, rewind)
        on_event("method", {"method": name, "seed": seed})
        epochs = matched_epochs(records[label(method[len(MATCHED):], rewind)]) if method.startswith(MATCHED) else None
        follows = name != SOURCE and method not in OWN_SCHEDULE
        config = method_config(base, method, seed, rewind, follow if follows else None, epochs)
        run = run_pruning(config, runs_root, on_event=on_event)
        records[name] = load_records(run)
        if name == SOURCE:
            follow = trajectory(run)
            if len(follow) != base.prune.iterations:
                raise ConfigError(f"the SAP run {run} finished {len(follow)} of {base.prune.iterations} iterations; "
                                  "re-run to finish it")
    return records, follow


def run_compare(base: RunConfig, methods: list[str], seeds: list[int], runs_root: Path,
                out: Optional[Path] = None, on_event: Callable[[str, dict], None] = lambda k, i: None,
                rewinds: tuple[str, ...] = (DEFAULT_REWIND,)) -> Path:
    """Run (or reuse) every method x rewind x seed, then write comparison.json, comparison.md and the plots."""
    from .plots import comparison_plots

    order = plan(list(methods), list(rewinds))
    methods = list(dict.fromkeys(m for m, _ in order))
    out = Path(out) if out else Path(runs_root) / "compare" / comparison_id(base, methods, seeds, tuple(rewinds))
    records: Records = {label(m, r): {} for m, r in order}
    trajectories = {}
    for seed in seeds:
        by_label, trajectories[seed] = run_seed(base, order, seed, runs_root, on_event)
        for name, rs in by_label.items():
            records[name][seed] = rs
    summary = summarise(records, SOURCE)
    following = [name for name in records if name.partition("@")[0] not in OWN_SCHEDULE]
    identical = {"max_abs_diff_pp": remaining_spread_pp(records, following), "labels": following}
    write_json_atomic(out / "comparison.json", {"base_config": base.model_dump(mode="json"), "methods": methods,
                                                "rewinds": list(rewinds), "seeds": seeds, "labels": list(records),
                                                "summary": summary, "identical_remaining": identical,
                                                "trajectories": trajectories, "records": records})
    plots = comparison_plots(records, out)
    write_text_atomic(out / "comparison.md", "# Comparison\n\n" + markdown_table(summary_rows(summary)) + "\n"
                      + _identical_line(identical) + "".join(f"![{p.stem}]({p.name})\n" for p in plots))
    return out


def _identical_line(identical: dict) -> str:
    gap = identical["max_abs_diff_pp"]
    text = "n/a" if gap is None else f"{gap:.3f} pp"
    return (f"Remaining weights, largest difference between methods at any iteration and seed: {text} "
            f"({', '.join(identical['labels'])}).\n\n")
