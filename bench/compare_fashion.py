"""P1-P3 (docs/algorithms.md §4.6), fairly: InCoP against the fixed-epoch schedule, the budget-matched, final-only
and one-shot baselines and accuracy stopping, on FashionMNIST.

    .venv/bin/python bench/compare_fashion.py                # 5 seeds, SAP (1, 2) to ~8 %: about 2 h on 2 cores
    .venv/bin/python bench/compare_fashion.py --structured   # the main job's config, 3 seeds: -> compare_structured/
    .venv/bin/python bench/compare_fashion.py --quick        # 1 seed, 2 iterations, a small subset: a smoke run

Default: small CNN, 4000 training images, 2000 validation images from outside them, the full test split; SAP
(aggressive preset p=1, q=2) retraining 10 fixed epochs runs first and every other method follows its remaining
weights per iteration. `--structured`: the main job's own configuration (flows.params.default_run: 20,000 training
images, layer-filter, round_to 8, LTH 0.2, 5 epochs), LTH with fixed epochs as the source. Baselines: matched-incop-X
(fixed epochs, incop-X's total), final-only (0 epochs in every iteration but the last), one-shot (prune once to the
final survivors), both retraining the last one max_epochs. Each run uses one intra-op thread. Writes
comparison.json/.md, PNGs and figures.json/.md: per InCoP method, P1 epochs ÷ fixed, P2 wall ÷ fixed, P3 check
share, accuracy − fixed and InCoP − matched / final-only / one-shot (pp, paired per seed, 95 % t-interval), whether
intermediate retraining matters at all (fixed − final-only), how identical the remaining weights are, and the
signal's discrimination figures from bench/results/flow_discrimination/ when present.
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

from incop_core.experiments.compare import run_compare
from incop_core.experiments.methods import FINAL_ONLY, ONE_SHOT
from incop_core.experiments.compare_stats import label
from incop_core.imp.config import RunConfig, validate
from incop_core.foundations.fileio import write_json_atomic, write_text_atomic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # flows/ beside incop_core, when run as a script
from flows.params import default_run  # noqa: E402  (the main job's configuration, for --structured)

ROOT = Path(__file__).resolve().parent
DISCRIMINATION = ROOT / "results" / "flow_discrimination" / "figures.json"
TARGETS = {"P1": 0.33, "P2": 0.40, "P3": 0.03, "acc_pp": 0.5, "P1b_pp": 0.5, "P1c_epochs": 1.10, "identical_pp": 0.1,
           "remaining_pct": 10.0}
DEFAULT_SIGNALS = "disagreement"


def base_config(args) -> RunConfig:
    """The fair comparison's own setting (global SAP (1, 2)), or with --structured the main job's configuration
    (flows.params.default_run: layer-filter, round_to 8, LTH 0.2) with its data and epochs."""
    if args.structured:
        raw = default_run().model_dump(mode="json")
        raw["prune"].update({"iterations": args.iterations, "max_epochs": args.max_epochs})
        raw["data"].update({"test_subset": args.test_subset})
        raw["device"] = args.device
        return validate(raw)
    return validate({"seed": 0, "device": args.device, "model": {"name": "small-cnn"},
                     "data": {"name": "fashion-mnist", "train_subset": args.train_subset, "val_size": args.val_size,
                              "test_subset": args.test_subset},
                     "finetune_epochs": args.finetune_epochs,
                     "prune": {"iterations": args.iterations, "max_epochs": args.max_epochs, "scope": "global",
                               "probe_size": args.probe_size, "schedule": {"kind": "sap", "p": 1.0, "q": 2.0}}})


def method_list(signals: list[str], matched: list[str], accuracy: bool = True) -> list[str]:
    """The source runs first anyway; then every baseline that exposes waste, and InCoP per signal."""
    return [*(["accuracy"] if accuracy else []), FINAL_ONLY, ONE_SHOT, *(f"incop-{s}" for s in signals),
            *(f"matched-incop-{s}" for s in matched)]


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
    acc, matched, final_only = f["acc_vs_source_pp"], f["P1b_vs_matched_pp"], f["P1c_vs_final_only_pp"]
    if final_only is None or final_only["mean"] is None:
        p1c = None
    elif f["intermediate_retraining_matters"]:
        # it must beat final-only where retraining matters
        p1c = final_only["low"] is not None and final_only["low"] > 0
    else:
        p1c = f["epochs_ratio_to_final_only"] is not None and f["epochs_ratio_to_final_only"] <= TARGETS["P1c_epochs"]
    return {"P1": f["P1_epochs_ratio"] is not None and acc["mean"] is not None
            and f["P1_epochs_ratio"] <= TARGETS["P1"] and abs(acc["mean"]) <= TARGETS["acc_pp"],
            "P1b": None if matched is None else bool(matched["mean"] is not None
                                                     and matched["mean"] >= TARGETS["P1b_pp"]
                                                     and matched["low"] is not None and matched["low"] > 0),
            "P1c": p1c,
            "identical": (f["identical_remaining_pp"] is not None
                          and f["identical_remaining_pp"] <= TARGETS["identical_pp"]),
            "deep": f["final_remaining_pct"] <= TARGETS["remaining_pct"],
            "P2": f["P2_wall_ratio"] is not None and f["P2_wall_ratio"] <= TARGETS["P2"],
            "P3": f["P3_flow_share"] is not None and f["P3_flow_share"] <= TARGETS["P3"]}


def _interval(s: Optional[dict]) -> Optional[dict]:
    return None if s is None else {k: s[k] for k in ("mean", "low", "high", "n")}


def intermediate_matters(summary: dict, source: str) -> Optional[bool]:
    """Does retraining the intermediate iterations matter here? Yes when the fixed-epoch source beats final-only
    (paired over seeds) with its 95 % interval above 0; None when final-only did not run."""
    s = summary.get(source, {}).get("test_acc_pp_vs_final_only")
    return None if s is None or s["mean"] is None else bool(s["low"] is not None and s["low"] > 0)


def figure(summary: dict, signal: str, rewind: str, disc: dict, source: str = "sap",
           matters: Optional[bool] = None) -> dict:
    s = summary[label(f"incop-{signal}", rewind)]
    matched = s.get("test_acc_pp_vs_matched")
    f = {"signal": signal, "rewind": rewind, "source": source, "P1_epochs_ratio": s.get("epochs_ratio_to_source"),
         "P2_wall_ratio": s.get("wall_ratio_to_source"), "P3_flow_share": s["flow_share"]["mean"],
         "acc_vs_source_pp": _interval(s.get("test_acc_pp_vs_source")),
         "identical_remaining_pp": s.get("remaining_gap_pp_vs_source"),
         "final_remaining_pct": s["final_remaining_pct"], "P1b_vs_matched_pp": _interval(matched),
         "P1c_vs_final_only_pp": _interval(s.get("test_acc_pp_vs_final_only")),
         "P1d_vs_one_shot_pp": _interval(s.get("test_acc_pp_vs_one_shot")),
         "epochs_ratio_to_final_only": s.get("epochs_ratio_to_final_only"),
         "epochs_ratio_to_one_shot": s.get("epochs_ratio_to_one_shot"),
         "intermediate_retraining_matters": matters,
         "discrimination_auroc": disc.get(signal, {}).get("auroc"),
         "discrimination_spearman": disc.get(signal, {}).get("spearman")}
    f["meets"] = _meets(f)
    return f


def figures(comparison: dict, signals: list[str], disc: dict) -> dict:
    """Per InCoP method and rewind (label "incop-kl", "incop-kl@previous"), from comparison.json's contents."""
    source = comparison.get("source", "sap")
    matters = intermediate_matters(comparison["summary"], source)
    return {label(f"incop-{signal}", rewind): figure(comparison["summary"], signal, rewind, disc, source, matters)
            for rewind in comparison["rewinds"] for signal in signals}


def _pp(s: Optional[dict]) -> str:
    if not s or s["mean"] is None:
        return "–"
    return f"{s['mean']:+.2f}" if s["low"] is None else f"{s['mean']:+.2f} [{s['low']:+.2f}, {s['high']:+.2f}]"


def _num(value: Optional[float], spec: str) -> str:
    return "–" if value is None else format(value, spec)


def render(fig: dict) -> str:
    lines = ["| method | P1 epochs ÷ fixed | P2 wall ÷ fixed | P3 check share | acc − fixed pp [95 %] | "
             "− matched pp [95 %] | − final-only pp [95 %] | epochs ÷ final-only | − one-shot pp [95 %] | "
             "remaining gap pp | remaining % | AUROC | meets P1/P1b/P1c/identical/deep |", "|" + "---|" * 13]
    yes = {True: "yes", False: "no", None: "–"}
    for name, f in fig.items():
        meets = "/".join(yes[f["meets"][k]] for k in ("P1", "P1b", "P1c", "identical", "deep"))
        lines.append(f"| {name} | {_num(f['P1_epochs_ratio'], '.3f')} | {_num(f['P2_wall_ratio'], '.3f')} | "
                     f"{_num(None if f['P3_flow_share'] is None else 100 * f['P3_flow_share'], '.2f')} % | "
                     f"{_pp(f['acc_vs_source_pp'])} | {_pp(f['P1b_vs_matched_pp'])} | "
                     f"{_pp(f['P1c_vs_final_only_pp'])} | "
                     f"{_num(f['epochs_ratio_to_final_only'], '.3f')} | {_pp(f['P1d_vs_one_shot_pp'])} | "
                     f"{_num(f['identical_remaining_pp'], '.3f')} | {_num(f['final_remaining_pct'], '.2f')} | "
                     f"{_num(f['discrimination_auroc'], '.3f')} | {meets} |")
    return "\n".join(lines) + "\n"


def setup(meta: dict) -> str:
    """The setup under the figures: what ran, and what the numbers can and cannot say."""
    matters = {True: "yes: the fixed-epoch source beats final-only with its interval above 0",
               False: "no: the fixed-epoch source does not beat final-only with an interval above 0",
               None: "not measured (final-only did not run)"}[meta["intermediate_retraining_matters"]]
    if meta["structured"]:
        what = (f"The main job's configuration (flows.params.default_run: small CNN, {meta['train_subset']} training "
                f"and {meta['val_size']} validation images, LTH 0.2 of each layer's filters, layer-filter scope, "
                f"round_to 8) with {meta['iterations']} iterations down to "
                f"{meta['source_final_remaining_pct']:.2f} % of the weights; the "
                f"fixed-epoch source (`{meta['source']}`) retrains {meta['max_epochs']} epochs per iteration")
    else:
        what = (f"Small CNN on FashionMNIST, {meta['train_subset']} training images, {meta['val_size']} validation "
                f"images from outside them; SAP aggressive preset (p=1, q=2), {meta['iterations']} iterations down to "
                f"{meta['source_final_remaining_pct']:.2f} % of the weights; SAP retrains a fixed "
                f"{meta['max_epochs']} epochs per iteration (the paper's setting is 20); probe 1024 images")
    return "\n".join([
        "", "## Setup", "",
        what + f"; the full test split; seeds {meta['seeds']}; dense network fine-tuned with a cosine learning rate, "
        "retraining at lr / 10; `final-only` follows the same trajectory retraining 0 epochs in every iteration "
        f"but the last ({meta['max_epochs']} there), `one-shot` prunes once to the final survivors and retrains "
        f"{meta['max_epochs']} epochs; one intra-op thread per run, runs side by side on 2 shared cores, so wall-time "
        "ratios (P2) are noisier than epoch ratios (P1). Accuracy figures are test accuracy; every stopping decision "
        "used validation accuracy. Differences are paired per seed with 95 % Student-t intervals.",
        "", f"Does intermediate retraining matter here? {matters}.",
        f"Signals compared: {', '.join(meta['signals'])} (budget-matched baseline for {', '.join(meta['matched'])}).",
        "Identical remaining weights across methods: max abs difference "
        f"{meta['identical_remaining']['max_abs_diff_pp']:.3f} pp (final iteration, one-shot included: "
        f"{meta['identical_remaining'].get('final_max_abs_diff_pp') or 0:.3f} pp).",
        "Training wall time summed over every run's pruning iterations: "
        f"{meta['training_wall_seconds_all_runs']:.0f} s.",
        "", f"Reproduce: `.venv/bin/python bench/compare_fashion.py {meta['argv']}`", ""])


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structured", action="store_true", help="the main job's configuration (layer-filter, LTH)")
    parser.add_argument("--seeds", default=None, help="default 0-4 (structured: 0-2)")
    parser.add_argument("--signals", default=DEFAULT_SIGNALS, help="distances run as incop-<signal>")
    parser.add_argument("--matched", default=None,
                        help="signals that also get a budget-matched run (default: the first)")
    parser.add_argument("--no-accuracy", action="store_true", help="leave out the accuracy-stopping baseline")
    parser.add_argument("--rewinds", default="finetuned")
    parser.add_argument("--iterations", type=int, default=None, help="default 6 (structured: 4)")
    parser.add_argument("--max-epochs", type=int, default=None, help="default 10 (structured: the main job's 5)")
    parser.add_argument("--finetune-epochs", type=int, default=15, help="cosine fine-tuning epochs (to the plateau)")
    parser.add_argument("--train-subset", type=int, default=4000)
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--test-subset", type=int, default=None, help="default: the full test split")
    parser.add_argument("--probe-size", type=int, default=1024, help="probe images for the consistency signals")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 iterations, 1000 training images: a smoke run")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / ".runs", help="finished runs here are reused")
    parser.add_argument("--out", type=Path, default=None,
                        help="default bench/results/compare_fashion (or compare_structured)")
    args = parser.parse_args(argv)
    args.argv = " ".join(argv if argv is not None else sys.argv[1:])
    structured = args.structured
    args.seeds = args.seeds or ("0,1,2" if structured else "0,1,2,3,4")
    args.iterations = args.iterations or (4 if structured else 6)
    args.max_epochs = args.max_epochs or (default_run().prune.max_epochs if structured else 10)
    if structured:
        data = default_run().data
        args.train_subset, args.val_size = data.train_subset, data.val_size
    args.out = args.out or ROOT / "results" / ("compare_structured" if structured else "compare_fashion")
    args.signals = [s.strip() for s in args.signals.split(",") if s.strip()]
    args.matched = (args.signals[:1] if args.matched is None
                    else [s.strip() for s in args.matched.split(",") if s.strip()])
    if args.quick:
        args.seeds, args.iterations, args.max_epochs, args.finetune_epochs = "0", 2, 3, 5
        args.train_subset, args.val_size, args.test_subset = 1000, 500, 2000
        args.out = args.out.with_name(args.out.name + "_quick")
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    rewinds = tuple(r.strip() for r in args.rewinds.split(",") if r.strip())
    start = time.perf_counter()
    progress = lambda kind, info: kind == "method" and print(  # noqa: E731
        f"[{time.perf_counter() - start:7.0f} s] {info['method']} seed {info['seed']}", flush=True)
    base = base_config(args)
    folder = run_compare(base, method_list(args.signals, args.matched, not args.no_accuracy),
                         [int(s) for s in args.seeds.split(",")], args.runs_dir, args.out, progress, rewinds)
    comparison = json.loads((folder / "comparison.json").read_text())
    fig = figures(comparison, args.signals, discrimination(DISCRIMINATION))
    source = comparison["source"]
    meta = {"structured": args.structured, "argv": args.argv, "seeds": args.seeds, "iterations": args.iterations,
            "max_epochs": args.max_epochs, "rewinds": list(rewinds), "signals": args.signals, "matched": args.matched,
            "train_subset": base.data.train_subset, "val_size": base.data.val_size, "test_subset": args.test_subset,
            "threads": 1, "device": args.device, "torch": torch.__version__, "python": sys.version.split()[0],
            "cpu": platform.processor() or platform.machine(), "source": source,
            "identical_remaining": comparison["identical_remaining"],
            "source_final_remaining_pct": comparison["summary"][source]["final_remaining_pct"],
            "intermediate_retraining_matters": intermediate_matters(comparison["summary"], source),
            "source_vs_final_only_pp": comparison["summary"][source].get("test_acc_pp_vs_final_only"),
            "source_vs_one_shot_pp": comparison["summary"][source].get("test_acc_pp_vs_one_shot"),
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
