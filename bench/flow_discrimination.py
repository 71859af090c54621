"""Discrimination (docs/algorithms.md §4.6): does each consistency signal separate unrecovered checkpoints from
recovered ones?

    .venv/bin/python bench/flow_discrimination.py            # 3 seeds, small CNN width 32, ~15 min on one core
    .venv/bin/python bench/flow_discrimination.py --quick    # 1 seed, 8 dense epochs: a smoke run

Per seed: a small CNN fine-tuned on FashionMNIST (cosine, the product's recipe), then the checkpoint ladder of
incop_core.experiments.discrimination scored for every registered distance. Runs on one intra-op thread.
Writes bench/results/flow_discrimination/figures.json and figures.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from incop_core.datasets.config import DataConfig
from incop_core.datasets.data import load_dataset
from incop_core.experiments.discrimination import LadderConfig, run_ladder
from incop_core.experiments.discrimination_scores import K_FACTORS, MIN_AUROC, RECOVERED_GAP, UNRECOVERED_GAP
from incop_core.foundations.fileio import read_json, write_json_atomic, write_text_atomic
from incop_core.models.zoo import ModelConfig

ROOT = Path(__file__).resolve().parent
COMMAND = ".venv/bin/python bench/flow_discrimination.py"
PLATEAU_NOTE = ("Training follows the product's recipe: the dense network is fine-tuned with a cosine learning rate "
                "(lr 0.02 decayed towards 0), pruned networks retrain at the retraining learning rate (lr / 10), "
                "and each signal's noise is how far one retraining epoch moves the unpruned dense network (the noise "
                "`incop` calibrates its auto epsilon with). 'plateau' says whether validation gained < 0.3 pp over "
                "the last 2 epochs.")


def run_seed(args, seed: int, note) -> dict:
    total = args.train_subset + args.val_size
    data = load_dataset(DataConfig(name="fashion-mnist", train_subset=total, val_fraction=args.val_size / total,
                                   test_subset=10), seed)
    cfg = LadderConfig(dense_epochs=args.dense_epochs, probe_size=args.probe_size, seed=seed)
    ladder = run_ladder(ModelConfig(width=args.width), data, cfg, torch.device("cpu"), note)
    scores = {name: s.as_dict() for name, s in ladder.scores().items()}
    return {"seed": seed, "reference_val_acc": ladder.reference_acc, "best_epoch": ladder.best_epoch,
            "plateau": ladder.plateau,
            "dense_val": ladder.dense_val, "scores": scores, "rows": ladder.rows}


def _mean_table(tables: list[dict]) -> dict:
    return {k: {side: float(np.nanmean([t[k][side] for t in tables])) for side in tables[0][k]} for k in tables[0]}


def summarise(seeds: list[dict]) -> dict:
    """Per signal: AUROC and Spearman (mean, min, per seed), passes and noise per seed, the mean k-table."""
    out = {}
    for name in seeds[0]["scores"]:
        per = [s["scores"][name] for s in seeds]
        au, rho = [p["auroc"] for p in per], [p["spearman"] for p in per]
        out[name] = {"auroc_mean": float(np.mean(au)), "auroc_min": float(np.min(au)), "auroc_per_seed": au,
                     "spearman_mean": float(np.mean(rho)), "spearman_per_seed": rho,
                     "extremes_farther_per_seed": [p["extremes_farther"] for p in per],
                     "passes_per_seed": [p["passes"] for p in per], "passes_all": all(p["passes"] for p in per),
                     "noise_per_seed": [p["noise"] for p in per],
                     "k_table_mean": _mean_table([p["k_table"] for p in per])}
    return out


def _counts(seeds: list[dict]) -> str:
    parts = []
    for s in seeds:
        gaps = np.array([r["gap"] for r in s["rows"]])
        retrained = max(r["val_acc"] for r in s["rows"] if r["kind"] == "pruned")
        parts.append(f"seed {s['seed']}: reference val {100 * s['reference_val_acc']:.2f} % at dense epoch "
                     f"{s['best_epoch']} of {len(s['dense_val'])} (plateau: {'yes' if s.get('plateau') else 'no'}; "
                     f"dense val: {' '.join(f'{100 * v:.1f}' for v in s['dense_val'])}), "
                     f"best pruned checkpoint {100 * retrained:.2f} %; "
                     f"{int(np.sum(gaps <= RECOVERED_GAP))} recovered / "
                     f"{int(np.sum(gaps > UNRECOVERED_GAP))} unrecovered of {len(gaps)} checkpoints")
    return "\n".join(f"- {p}" for p in parts)


def _best_k(table: dict) -> str:
    k = max(table, key=lambda key: table[key]["recovered_below"] + table[key]["unrecovered_above"])
    return f"k={k}: {100 * table[k]['recovered_below']:.0f} % / {100 * table[k]['unrecovered_above']:.0f} %"


def render(fig: dict, seeds: list[dict], meta: dict) -> str:
    lines = ["# Discrimination of consistency signals (docs/algorithms.md §4.6)", "",
             f"A signal passes when AUROC(unrecovered gap > {100 * UNRECOVERED_GAP:g} pp vs recovered gap <= "
             f"{100 * RECOVERED_GAP:g} pp) >= {MIN_AUROC} and the random and 99 %-pruned (before retraining) networks "
             "are farther than every recovered checkpoint.", "",
             "| signal | AUROC mean (min) | Spearman mean | passes (per seed) | dense noise (per seed) | "
             "best k: recovered below / unrecovered above |",
             "|---|---|---|---|---|---|"]
    for name, f in sorted(fig.items(), key=lambda item: -item[1]["auroc_mean"]):
        passes = " ".join("yes" if p else "no" for p in f["passes_per_seed"])
        noise = " ".join(f"{n:.3g}" for n in f["noise_per_seed"])
        lines.append(f"| {name} | {f['auroc_mean']:.3f} ({f['auroc_min']:.3f}) | {f['spearman_mean']:.3f} | {passes} | "
                     f"{noise} | {_best_k(f['k_table_mean'])} |")
    lines += ["", "## Threshold epsilon = k x dense noise (mean over seeds)", "",
              "Share of recovered checkpoints below epsilon / unrecovered ones at or above it.", "",
              "| signal | " + " | ".join(f"k={k:g}" for k in K_FACTORS) + " |", "|---" * (len(K_FACTORS) + 1) + "|"]
    for name, f in sorted(fig.items()):
        cells = [f"{100 * c['recovered_below']:.0f} / {100 * c['unrecovered_above']:.0f}"
                 for c in f["k_table_mean"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Setup", "", _counts(seeds), "", PLATEAU_NOTE, "", *(f"- {k}: {v}" for k, v in meta.items()), "",
              f"Reproduce: `{meta['command']}`", ""]
    return "\n".join(lines)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train-subset", type=int, default=4000, help="training images")
    parser.add_argument("--val-size", type=int, default=2000, help="validation images held out of the training split")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--dense-epochs", type=int, default=15, help="cosine fine-tuning epochs of the dense network")
    parser.add_argument("--probe-size", type=int, default=1024)
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, 8 dense epochs, written to flow_discrimination_quick")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "flow_discrimination")
    parser.add_argument("--render-only", action="store_true", help="rewrite figures.md from the figures.json in --out")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.dense_epochs = "0", 8
        args.out = args.out.with_name("flow_discrimination_quick")
    return args


def main() -> None:
    args = parse()
    if args.render_only:
        saved = read_json(args.out / "figures.json")
        write_text_atomic(args.out / "figures.md", render(saved["figures"], saved["seeds"], saved["meta"]))
        return
    torch.set_num_threads(1)
    start = time.perf_counter()
    seeds = []
    for seed in (int(s) for s in args.seeds.split(",")):
        note = lambda msg, seed=seed: print(f"[{time.perf_counter() - start:7.0f} s] seed {seed}: {msg}", flush=True)  # noqa: E731
        seeds.append(run_seed(args, seed, note))
    fig = summarise(seeds)
    meta = {"data": f"FashionMNIST, {args.train_subset} training / {args.val_size} validation images "
                    "(seeded split per seed)",
            "model": f"small-cnn width {args.width}",
            "optimiser": "masked SGD, momentum 0.9, wd 5e-4, batch 128; fine-tuning lr 0.02 cosine, "
                         "retraining lr 0.002",
            "dense": f"{args.dense_epochs} cosine epochs; reference = best validation epoch",
            "probe": f"{args.probe_size} training images", "seeds": args.seeds, "threads": 1, "device": "cpu",
            "torch": torch.__version__, "python": sys.version.split()[0],
            "cpu": platform.processor() or platform.machine(),
            "bench_wall_seconds": round(time.perf_counter() - start, 1),
            "command": COMMAND + (" --quick" if args.quick else "")}
    write_json_atomic(args.out / "figures.json", {"meta": meta, "figures": fig, "seeds": seeds})
    write_text_atomic(args.out / "figures.md", render(fig, seeds, meta))
    print(render(fig, seeds, meta))


if __name__ == "__main__":
    main()
