"""P1-P3 (docs/algorithms.md §4.6), fairly: InCoP against SAP, the budget-matched baseline and accuracy stopping
on FashionMNIST.

    .venv/bin/python bench/compare_fashion.py            # 5 seeds x 2 rewinds, 6 iterations: hours on 2 cores
    .venv/bin/python bench/compare_fashion.py --quick    # 1 seed, 2 iterations, a small subset: a smoke run

Small CNN, 4000 training images, 2000 validation images from outside them, the full test split. Per seed,
SAP (aggressive preset p=1, q=2) runs first and every other method follows its remaining weights per
iteration, under both rewinds; matched-incop-X retrains fixed epochs with incop-X's total budget. Each
run uses one intra-op thread. Writes bench/results/compare_fashion/ (comparison.json/.md, PNGs) and
figures.json/.md: per InCoP method and rewind, P1 epochs ÷ SAP, P2 wall ÷ SAP, P3 flow share,
accuracy − SAP and InCoP − matched (pp, paired per seed, 95 % t-interval), how identical the remaining
weights are, and the signal's discrimination figures from bench/results/flow_discrimination/ when present.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Optional

import torch

from incop_core.compare import run_compare
from incop_core.compare_stats import label
from incop_core.config import RunConfig, validate
from incop_core.fileio import write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parent
DISCRIMINATION = ROOT / "results" / "flow_discrimination" / "figures.json"
TARGETS = {"P1": 0.33, "P2": 0.40, "P3": 0.03, "acc_pp": 0.5, "P1b_pp": 0.5, "identical_pp": 0.1, "remaining_pct": 10.0}
DEFAULT_SIGNALS = "disagreement,kl,if-paper"


def base_config(args) -> RunConfig:
    return validate({"seed": 0, "device": args.device, "model": {"name": "small-cnn"},
                     "data": {"name": "fashion-mnist", "train_subset": args.train_subset, "val_size": args.val_size,
                              "test_subset": args.test_subset},
                     "finetune_epochs": args.finetune_epochs,
                     "prune": {"iterations": args.iterations, "max_epochs": args.max_epochs, "scope": "global",
                               "probe_size": args.probe_size, "schedule": {"kind": "sap", "p": 1.0, "q": 2.0}}})


def method_list(signals: list[str], matched: list[str]) -> list[str]:
    return ["sap", "accuracy", *(f"incop-{s}" for s in signals), *(f"matched-incop-{s}" for s in matched)]


def _number(value) -> Optional[float]:
    """A figure that may be a number or {"mean": number, ...}."""
    if isinstance(value, dict):
        value = value.get("mean")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _signal_table(node, depth: int = 0) -> dict:
    """The first dict (searched a few levels deep) whose values are per-signal dicts with "auroc" or "spearman"."""
    if not isinstance(node, dict) or depth > 3:
        return {}
    rows = {k: v for k, v in node.items() if isinstance(v, dict) and {"auroc", "spearman", "auroc_mean"} & set(v)}
    if rows:
        return rows
    for child in node.values():
        found = _signal_table(child, depth + 1)
        if found:
            return found
    return {}


def discrimination(path: Path) -> dict[str, dict]:
    """AUROC and Spearman per signal from the discrimination bench; empty when it has not run."""
    try:
        table = _signal_table(json.loads(Path(path).read_text()))
    except (OSError, ValueError):
        return {}
    return {name: {"auroc": _number(row.get("auroc", row.get("auroc_mean"))),
                   "spearman": _number(row.get("spearman", row.get("spearman_mean")))} for name, row in table.items()}


def _meets(f: dict) -> dict:
    acc, matched = f["acc_vs_sap_pp"], f["P1b_vs_matched_pp"]
    return {"P1": f["P1_epochs_ratio"] is not None and acc["mean"] is not None
            and f["P1_epochs_ratio"] <= TARGETS["P1"] and abs(acc["mean"]) <= TARGETS["acc_pp"],
            "P1b": None if matched is None else bool(matched["mean"] is not None and matched["mean"] >= TARGETS["P1b_pp"]
                                                     and matched["low"] is not None and matched["low"] > 0),
            "identical": f["identical_remaining_pp"] is not None and f["identical_remaining_pp"] <= TARGETS["identical_pp"]
            and f["final_remaining_pct"] <= TARGETS["remaining_pct"],
            "P2": f["P2_wall_ratio"] is not None and f["P2_wall_ratio"] <= TARGETS["P2"],
            "P3": f["P3_flow_share"] is not None and f["P3_flow_share"] <= TARGETS["P3"]}


def _interval(s: Optional[dict]) -> Optional[dict]:
    return None if s is None else {k: s[k] for k in ("mean", "low", "high", "n")}


def figure(summary: dict, signal: str, rewind: str, disc: dict) -> dict:
    s = summary[label(f"incop-{signal}", rewind)]
    matched = s.get("test_acc_pp_vs_matched")
    f = {"signal": signal, "rewind": rewind, "P1_epochs_ratio": s.get("epochs_ratio_to_sap"),
         "P2_wall_ratio": s.get("wall_ratio_to_sap"), "P3_flow_share": s["flow_share"]["mean"],
         "acc_vs_sap_pp": _interval(s.get("test_acc_pp_vs_sap")), "identical_remaining_pp": s.get("remaining_gap_pp_vs_source"),
         "final_remaining_pct": s["final_remaining_pct"], "P1b_vs_matched_pp": _interval(matched),
         "discrimination_auroc": disc.get(signal, {}).get("auroc"),
         "discrimination_spearman": disc.get(signal, {}).get("spearman")}
    f["meets"] = _meets(f)
    return f


def figures(comparison: dict, signals: list[str], disc: dict) -> dict:
    """Per InCoP method and rewind (label "incop-kl", "incop-kl@previous"), from comparison.json's contents."""
    return {label(f"incop-{signal}", rewind): figure(comparison["summary"], signal, rewind, disc)
            for rewind in comparison["rewinds"] for signal in signals}


def _pp(s: Optional[dict]) -> str:
    if not s or s["mean"] is None:
        return "–"
    return f"{s['mean']:+.2f}" if s["low"] is None else f"{s['mean']:+.2f} [{s['low']:+.2f}, {s['high']:+.2f}]"


def _num(value: Optional[float], spec: str) -> str:
    return "–" if value is None else format(value, spec)


def render(fig: dict) -> str:
    lines = ["| method | P1 epochs ÷ SAP | P2 wall ÷ SAP | P3 flow share | acc − SAP pp [95 %] | − matched pp [95 %] | "
             "remaining gap pp | remaining % | AUROC | Spearman | meets P1/P1b/identical |", "|" + "---|" * 11]
    yes = {True: "yes", False: "no", None: "–"}
    for name, f in fig.items():
        meets = "/".join(yes[f["meets"][k]] for k in ("P1", "P1b", "identical"))
        lines.append(f"| {name} | {_num(f['P1_epochs_ratio'], '.3f')} | {_num(f['P2_wall_ratio'], '.3f')} | "
                     f"{_num(None if f['P3_flow_share'] is None else 100 * f['P3_flow_share'], '.2f')} % | "
                     f"{_pp(f['acc_vs_sap_pp'])} | {_pp(f['P1b_vs_matched_pp'])} | {_num(f['identical_remaining_pp'], '.3f')} | "
                     f"{_num(f['final_remaining_pct'], '.2f')} | {_num(f['discrimination_auroc'], '.3f')} | "
                     f"{_num(f['discrimination_spearman'], '.3f')} | {meets} |")
    return "\n".join(lines) + "\n"


def setup(meta: dict) -> str:
    """The setup under the figures: what ran, and what the numbers can and cannot say."""
    return "\n".join([
        "", "## Setup", "",
        f"Small CNN on FashionMNIST, {meta['train_subset']} training images, {meta['val_size']} validation images from "
        f"outside them, the full test split; seeds {meta['seeds']}; SAP aggressive preset (p=1, q=2), {meta['iterations']} "
        f"iterations down to {meta['sap_final_remaining_pct']['finetuned']:.2f} % of the weights; SAP retrains a fixed "
        f"{meta['max_epochs']} epochs per iteration (the paper's setting is 20: 10 keeps the CPU run near an hour); dense "
        "network fine-tuned 15 epochs with a cosine learning rate, retraining at lr / 10; probe 1024 images; one intra-op "
        "thread per run, several runs side by side on 2 shared cores, so wall-time ratios (P2) are noisier than epoch "
        "ratios (P1). Accuracy figures are test accuracy; every stopping decision used validation accuracy.",
        "", f"Signals compared: {', '.join(meta['signals'])} (budget-matched baseline for {', '.join(meta['matched'])}).",
        f"Identical remaining weights across methods: max abs difference {meta['identical_remaining']['max_abs_diff_pp']:.3f} pp.",
        f"Training wall time summed over every run's pruning iterations: {meta['training_wall_seconds_all_runs']:.0f} s.",
        "", "Reproduce: `.venv/bin/python bench/compare_fashion.py --signals disagreement,if-paper --matched disagreement`", ""])


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--signals", default=DEFAULT_SIGNALS, help="distances run as incop-<signal>")
    parser.add_argument("--matched", default=None, help="signals that also get a budget-matched run (default: the first)")
    parser.add_argument("--rewinds", default="finetuned,previous")
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=15, help="cosine fine-tuning epochs (to the plateau)")
    parser.add_argument("--train-subset", type=int, default=4000)
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--test-subset", type=int, default=None, help="default: the full test split")
    parser.add_argument("--probe-size", type=int, default=1024, help="probe images for the consistency signals")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 iterations, 1000 training images: a smoke run")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / ".runs", help="finished runs here are reused")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "compare_fashion")
    args = parser.parse_args(argv)
    args.signals = [s.strip() for s in args.signals.split(",") if s.strip()]
    args.matched = args.signals[:1] if args.matched is None else [s.strip() for s in args.matched.split(",") if s.strip()]
    if args.quick:
        args.seeds, args.iterations, args.max_epochs, args.finetune_epochs = "0", 2, 3, 5
        args.train_subset, args.val_size, args.test_subset = 1000, 500, 2000
        args.out = args.out.with_name("compare_fashion_quick") if args.out.name == "compare_fashion" else args.out
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    rewinds = tuple(r.strip() for r in args.rewinds.split(",") if r.strip())
    start = time.perf_counter()
    progress = lambda kind, info: kind == "method" and print(  # noqa: E731
        f"[{time.perf_counter() - start:7.0f} s] {info['method']} seed {info['seed']}", flush=True)
    folder = run_compare(base_config(args), method_list(args.signals, args.matched), [int(s) for s in args.seeds.split(",")],
                         args.runs_dir, args.out, progress, rewinds)
    comparison = json.loads((folder / "comparison.json").read_text())
    fig = figures(comparison, args.signals, discrimination(DISCRIMINATION))
    meta = {"seeds": args.seeds, "iterations": args.iterations, "max_epochs": args.max_epochs, "rewinds": list(rewinds),
            "signals": args.signals, "matched": args.matched, "train_subset": args.train_subset, "val_size": args.val_size,
            "test_subset": args.test_subset, "threads": 1, "device": args.device, "torch": torch.__version__,
            "python": sys.version.split()[0], "cpu": platform.processor() or platform.machine(),
            "identical_remaining": comparison["identical_remaining"],
            "sap_final_remaining_pct": {r: comparison["summary"][label("sap", r)]["final_remaining_pct"] for r in rewinds},
            "discrimination_source": str(DISCRIMINATION) if DISCRIMINATION.is_file() else None,
            "bench_wall_seconds": time.perf_counter() - start, "targets": TARGETS}
    meta["training_wall_seconds_all_runs"] = round(sum(r["wall_seconds"] for by_seed in comparison["records"].values()
                                                       for recs in by_seed.values() for r in recs[1:]), 1)
    write_json_atomic(folder / "figures.json", {"meta": meta, "figures": fig})
    write_text_atomic(folder / "figures.md", render(fig) + setup(meta))
    print((folder / "comparison.md").read_text())
    print(render(fig))
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
