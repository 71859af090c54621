"""Pure statistics of a comparison (docs/algorithms.md §4.6): totals over seeds, ratios and paired differences against
the fixed-epoch source of the same rewind (SAP, or LTH on the structured path), and for every InCoP method against the
budget-matched, final-only and one-shot baselines, and how identical the trajectories are.

Records are keyed by label ("sap", "incop-kl@previous": method, then "@rewind" unless finetuned), then seed.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import numpy as np

from incop_core.imp.records import totals

Records = dict[str, dict[int, list[dict]]]
DEFAULT_REWIND = "finetuned"
MATCHED = "matched-"
BASELINES = {"matched": None, "final_only": "final-only", "one_shot": "one-shot"}  # InCoP is paired with each
# Student t quantile t_{0.975, df} for df = 1..30 (two-sided 95 %); beyond, the Cornish-Fisher series below.
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
Z975 = 1.959964
TOTAL_KEYS = ("retrain_epochs", "pruning_wall_seconds", "flow_seconds", "flow_share", "final_remaining_fraction",
              "final_test_acc")


def label(method: str, rewind: str) -> str:
    return method if rewind == DEFAULT_REWIND else f"{method}@{rewind}"


def split_label(name: str) -> tuple[str, str]:
    method, _, rewind = name.partition("@")
    return method, rewind or DEFAULT_REWIND


def t975(df: int) -> float:
    """Two-sided 95 % Student t quantile; a table up to 30 degrees of freedom, the series of
    Abramowitz & Stegun 26.7.5 beyond (error below 1e-5 there)."""
    if df < 1:
        raise ValueError(f"a t quantile needs at least 1 degree of freedom (got {df})")
    if df <= len(T975):
        return T975[df - 1]
    z = Z975
    g = ((z ** 3 + z) / 4, (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96,
         (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384,
         (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160)
    return z + sum(gk / df ** (k + 1) for k, gk in enumerate(g))


def t_interval(values: Iterable[float]) -> dict:
    """Mean and 95 % t-interval of paired differences; the bounds are None below two values."""
    x = [float(v) for v in values]
    n = len(x)
    mean = sum(x) / n if n else None
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": n, "values": x}
    half = t975(n - 1) * float(np.std(x, ddof=1)) / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n, "values": x}


def paired_pp(records: Records, a: str, b: str) -> dict:
    """Final test accuracy of `a` minus `b`, in pp, per seed both ran, with its 95 % interval."""
    seeds = sorted(set(records[a]) & set(records[b]))
    return t_interval(100 * (totals(records[a][s])["final_test_acc"] - totals(records[b][s])["final_test_acc"])
                      for s in seeds)


def remaining_spread_pp(records: Records, labels: list[str]) -> Optional[float]:
    """Largest difference in remaining weights (pp) between `labels` at any iteration of any seed."""
    worst = None
    seeds = set.intersection(*(set(records[name]) for name in labels)) if labels else set()
    for seed in seeds:
        runs = [records[name][seed] for name in labels]
        for t in range(max(len(r) for r in runs)):
            values = [100 * r[t]["remaining_fraction"] if t < len(r) else math.inf for r in runs]
            worst = max(worst or 0.0, max(values) - min(values))
    return worst


def final_spread_pp(records: Records, labels: list[str]) -> Optional[float]:
    """Largest difference in final remaining weights (pp) between `labels` on any seed (one-shot has one iteration)."""
    seeds = set.intersection(*(set(records[name]) for name in labels)) if labels else set()
    gaps = [max(v) - min(v) for v in ([100 * records[n][s][-1]["remaining_fraction"] for n in labels] for s in seeds)]
    return max(gaps) if gaps else None


def _mean_std(values: list) -> dict:
    array = np.array([v for v in values if v is not None], dtype=float)
    return {"mean": float(array.mean()) if array.size else None, "std": float(array.std()) if array.size else None}


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def _against_source(row: dict, source: dict) -> None:
    row["epochs_ratio_to_source"] = _ratio(row["retrain_epochs"]["mean"], source["retrain_epochs"]["mean"])
    row["wall_ratio_to_source"] = _ratio(row["pruning_wall_seconds"]["mean"], source["pruning_wall_seconds"]["mean"])
    row["test_acc_diff_pp_vs_source"] = 100 * (row["final_test_acc"]["mean"] - source["final_test_acc"]["mean"])


def _baseline(kind: str, method: str, rewind: str) -> str:
    """The label an InCoP method is paired with: its budget-matched twin (same rewind), or final-only / one-shot."""
    return label(MATCHED + method, rewind) if BASELINES[kind] is None else BASELINES[kind]


def summarise(records: Records, source: str = "sap") -> dict:
    """Per label: mean and std over seeds of the totals, final remaining %, ratios and paired test-accuracy
    differences against the fixed-epoch `source` of the same rewind, for an InCoP method against its budget-matched
    run and the final-only and one-shot baselines (with its epochs over theirs), and the largest remaining-weights gap
    (pp) to the source."""
    summary = {name: {k: _mean_std([totals(r)[k] for r in by_seed.values()]) for k in TOTAL_KEYS}
               for name, by_seed in records.items()}
    for name, row in summary.items():
        method, rewind = split_label(name)
        final = row["final_remaining_fraction"]["mean"]
        row["final_remaining_pct"] = None if final is None else 100 * final
        reference = label(source, rewind)
        if reference in summary:
            _against_source(row, summary[reference])
            row["test_acc_pp_vs_source"] = paired_pp(records, name, reference)
        for kind in BASELINES:
            other = _baseline(kind, method, rewind)
            # the source: does it matter?
            paired = method.startswith("incop-") or (kind != "matched" and method == source)
            if paired and other in summary and other != name:
                row[f"test_acc_pp_vs_{kind}"] = paired_pp(records, name, other)
                row[f"epochs_ratio_to_{kind}"] = _ratio(row["retrain_epochs"]["mean"],
                                                        summary[other]["retrain_epochs"]["mean"])
        if source in records and method != BASELINES["one_shot"]:
            row["remaining_gap_pp_vs_source"] = remaining_spread_pp(records, [name, source])
        elif source in records:
            row["remaining_gap_pp_vs_source"] = final_spread_pp(records, [name, source])
    return summary


def _interval_text(s: Optional[dict]) -> str:
    if not s or s["mean"] is None:
        return ""
    if s["low"] is None:
        return f"{s['mean']:+.2f}"
    return f"{s['mean']:+.2f} [{s['low']:+.2f}, {s['high']:+.2f}]"


def _fmt(s: dict, scale: float = 1.0, digits: int = 2) -> str:
    return "" if s["mean"] is None else f"{scale * s['mean']:.{digits}f} ± {scale * s['std']:.{digits}f}"


def _opt(value: Optional[float], spec: str) -> str:
    return "" if value is None else format(value, spec)


def summary_rows(summary: dict, source: str = "sap") -> list[dict]:
    ref = source.upper() if source == "sap" else source
    return [{"method": m, "retrain epochs": _fmt(s["retrain_epochs"], digits=1),
             "pruning wall s": _fmt(s["pruning_wall_seconds"], digits=1),
             "flow share %": _fmt(s["flow_share"], 100), "remaining %": _fmt(s["final_remaining_fraction"], 100),
             "test acc %": _fmt(s["final_test_acc"], 100),
             f"epochs ÷ {ref}": _opt(s.get("epochs_ratio_to_source"), ".3f"),
             f"wall ÷ {ref}": _opt(s.get("wall_ratio_to_source"), ".3f"),
             f"acc − {ref} pp [95 %]": _interval_text(s.get("test_acc_pp_vs_source")),
             "acc − matched pp [95 %]": _interval_text(s.get("test_acc_pp_vs_matched")),
             "acc − final-only pp [95 %]": _interval_text(s.get("test_acc_pp_vs_final_only")),
             "acc − one-shot pp [95 %]": _interval_text(s.get("test_acc_pp_vs_one_shot")),
             "remaining gap pp": _opt(s.get("remaining_gap_pp_vs_source"), ".3f")}
            for m, s in summary.items()]
