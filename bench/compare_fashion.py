"""P1-P3 (SPEC 5): InCoP against SAP on FashionMNIST with the small CNN, on the CPU, in one run.

    .venv/bin/python bench/compare_fashion.py            # 3 seeds, 8 iterations, ~40 min on 2 cores
    .venv/bin/python bench/compare_fashion.py --quick    # 1 seed, 3 iterations, a smoke run

Methods run seed by seed, interleaved, each on one intra-op thread so they share the machine alike.
Writes bench/results/compare_fashion/ (comparison.json, comparison.md, PNGs) and figures.json/.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from incop_core.compare import run_compare
from incop_core.config import validate
from incop_core.fileio import write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parent
TARGETS = {"P1": 0.33, "P2": 0.40, "P3": 0.03, "acc_pp": 0.5}
INCOP = ("incop-if", "incop-gf", "incop-if-auto", "incop-gf-auto")


def base_config(args):
    return validate({"seed": 0, "data": {"name": "fashion-mnist", "train_subset": args.train_subset, "test_subset": 2000},
                     "model": {"name": "small-cnn"}, "finetune_epochs": 5, "device": "cpu",
                     "prune": {"iterations": args.iterations, "max_epochs": 20, "scope": "global",
                               "schedule": {"kind": "sap", "p": 0.5, "q": 1.0}}})


def figures(summary: dict) -> dict:
    sap = summary["sap"]
    out = {}
    for method in (m for m in INCOP if m in summary):
        s = summary[method]
        out[method] = {"P1_epochs_ratio": s["epochs_ratio_to_sap"], "P2_wall_ratio": s["wall_ratio_to_sap"],
                       "P3_flow_share": s["flow_share"]["mean"], "test_acc_diff_pp": s["test_acc_diff_pp_vs_sap"],
                       "remaining_pct": 100 * s["final_remaining_fraction"]["mean"],
                       "sap_remaining_pct": 100 * sap["final_remaining_fraction"]["mean"]}
        out[method]["meets"] = {"P1": out[method]["P1_epochs_ratio"] <= TARGETS["P1"] and abs(out[method]["test_acc_diff_pp"]) <= TARGETS["acc_pp"],
                                "P2": out[method]["P2_wall_ratio"] <= TARGETS["P2"], "P3": out[method]["P3_flow_share"] <= TARGETS["P3"]}
    return out


def render(fig: dict) -> str:
    lines = ["| method | P1 epochs ÷ SAP | P2 wall ÷ SAP | P3 flow share | acc − SAP (pp) | remaining % (SAP) | meets P1/P2/P3 |",
             "|---|---|---|---|---|---|---|"]
    for m, f in fig.items():
        meets = "/".join("yes" if f["meets"][k] else "no" for k in ("P1", "P2", "P3"))
        lines.append(f"| {m} | {f['P1_epochs_ratio']:.3f} | {f['P2_wall_ratio']:.3f} | {100 * f['P3_flow_share']:.2f} % | "
                     f"{f['test_acc_diff_pp']:+.2f} | {f['remaining_pct']:.1f} ({f['sap_remaining_pct']:.1f}) | {meets} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--train-subset", type=int, default=4000)
    parser.add_argument("--with-lth", action="store_true", help="also run LTH (another ~15 min per seed)")
    parser.add_argument("--quick", action="store_true", help="1 seed, 3 iterations")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / ".runs", help="finished runs here are reused")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "compare_fashion")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.iterations = "0", 3
        args.out = args.out.with_name("compare_fashion_quick") if args.out.name == "compare_fashion" else args.out
    torch.set_num_threads(1)
    methods = (["lth"] if args.with_lth else []) + ["sap", *INCOP]
    start = time.perf_counter()
    folder = run_compare(base_config(args), methods, [int(s) for s in args.seeds.split(",")], args.runs_dir, args.out,
                         lambda kind, info: kind == "method" and print(f"[{time.perf_counter() - start:7.0f} s] {info['method']} seed {info['seed']}", flush=True))
    summary = json.loads((folder / "comparison.json").read_text())["summary"]
    fig = figures(summary)
    meta = {"seeds": args.seeds, "iterations": args.iterations, "train_subset": args.train_subset, "threads": 1,
            "torch": torch.__version__, "python": sys.version.split()[0], "cpu": platform.processor() or platform.machine(),
            "bench_wall_seconds": time.perf_counter() - start, "targets": TARGETS}
    write_json_atomic(folder / "figures.json", {"meta": meta, "figures": fig})
    write_text_atomic(folder / "figures.md", render(fig))
    print((folder / "comparison.md").read_text())
    print(render(fig))
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
