"""The paper's comparison, made fair (docs/algorithms.md §4.6): the same model, data, seeds and sparsity trajectory
for every method (the methods themselves: experiments/methods.py).

Per seed, the base schedule with fixed max_epochs (SAP, or LTH on the structured path) runs first with the default
rewind; its remaining weights per iteration become `prune.follow` for every other method and rewind, so they differ
only in how long they retrain. The results are written as comparison.json, comparison.md and plots.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Optional

from incop_core.experiments.compare_stats import (DEFAULT_REWIND, MATCHED, Records, final_spread_pp, label,
                                                  remaining_spread_pp, split_label, summarise, summary_rows)
from incop_core.experiments.methods import (ONE_SHOT, SCHEDULE_METHODS, matched_epochs, method_config, plan,
                                            source_method)
from incop_core.imp.config import RunConfig
from incop_core.foundations.errors import ConfigError
from incop_core.foundations.fileio import write_json_atomic, write_text_atomic
from incop_core.imp.records import markdown_table
from incop_core.imp.rundir import load_records
from incop_core.imp.runner import run_pruning
from incop_core.imp.trajectory import trajectory

def comparison_id(base: RunConfig, methods: list[str], seeds: list[int],
                  rewinds: tuple[str, ...] = (DEFAULT_REWIND,)) -> str:
    key = json.dumps([base.config_hash(), sorted(methods), sorted(seeds), sorted(rewinds)])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def run_seed(base: RunConfig, order: list[tuple[str, str]], seed: int, runs_root: Path,
             on_event: Callable[[str, dict], None]) -> tuple[dict[str, list[dict]], list[dict[str, int]]]:
    """Run (or reuse) every (method, rewind) of one seed; returns records per label and the followed trajectory."""
    records: dict[str, list[dict]] = {}
    follow: list[dict[str, int]] = []
    source = source_method(base)
    for method, rewind in order:
        name = label(method, rewind)
        on_event("method", {"method": name, "seed": seed})
        epochs = matched_epochs(records[label(method[len(MATCHED):], rewind)]) if method.startswith(MATCHED) else None
        follows = name != source and (method not in SCHEDULE_METHODS or method == source)
        config = method_config(base, method, seed, rewind, follow if follows else None, epochs)
        run = run_pruning(config, runs_root, on_event=on_event)
        records[name] = load_records(run)
        if name == source:
            follow = trajectory(run)
            if len(follow) != base.prune.iterations:
                raise ConfigError(f"the {source} run {run} finished {len(follow)} of {base.prune.iterations} "
                                  "iterations; re-run to finish it")
    return records, follow


def run_compare(base: RunConfig, methods: list[str], seeds: list[int], runs_root: Path,
                out: Optional[Path] = None, on_event: Callable[[str, dict], None] = lambda k, i: None,
                rewinds: tuple[str, ...] = (DEFAULT_REWIND,)) -> Path:
    """Run (or reuse) every method x rewind x seed, then write comparison.json, comparison.md and the plots."""
    from incop_core.experiments.plots import comparison_plots

    source = source_method(base)
    order = plan(list(methods), list(rewinds), source)
    methods = list(dict.fromkeys(m for m, _ in order))
    out = Path(out) if out else Path(runs_root) / "compare" / comparison_id(base, methods, seeds, tuple(rewinds))
    records: Records = {label(m, r): {} for m, r in order}
    trajectories = {}
    for seed in seeds:
        by_label, trajectories[seed] = run_seed(base, order, seed, runs_root, on_event)
        for name, rs in by_label.items():
            records[name][seed] = rs
    summary = summarise(records, source)
    following = [name for name in records if split_label(name)[0] not in (*SCHEDULE_METHODS, ONE_SHOT)
                 or split_label(name)[0] == source]
    identical = {"max_abs_diff_pp": remaining_spread_pp(records, following), "labels": following,
                 "final_max_abs_diff_pp": final_spread_pp(records,
                                                          [n for n in records if n in following or n == ONE_SHOT])}
    write_json_atomic(out / "comparison.json", {"base_config": base.model_dump(mode="json"), "source": source,
                                                "methods": methods, "rewinds": list(rewinds), "seeds": seeds,
                                                "labels": list(records), "summary": summary,
                                                "identical_remaining": identical,
                                                "trajectories": trajectories, "records": records})
    plots = comparison_plots(records, out)
    write_text_atomic(out / "comparison.md", "# Comparison\n\n" + markdown_table(summary_rows(summary, source)) + "\n"
                      + _identical_line(identical) + "".join(f"![{p.stem}]({p.name})\n" for p in plots))
    return out


def _identical_line(identical: dict) -> str:
    gap, final = identical["max_abs_diff_pp"], identical.get("final_max_abs_diff_pp")
    text = "n/a" if gap is None else f"{gap:.3f} pp"
    last = "" if final is None else f"; at the final iteration, one-shot included: {final:.3f} pp"
    return (f"Remaining weights, largest difference between methods at any iteration and seed: {text} "
            f"({', '.join(identical['labels'])}){last}.\n\n")
