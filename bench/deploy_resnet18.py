"""P4-P6 (issue #4): ResNet-18 on FashionMNIST, filter-scope pruning with fine-tuning, against its dense ONNX.

    .venv/bin/python bench/deploy_resnet18.py            # train (resumable), export, benchmark; ~25 min on 2 cores
    .venv/bin/python bench/deploy_resnet18.py --quick    # fewer timed runs (the run itself is cached in runs/)

Trains on a seeded training subset (CPU budget), prunes whole filters (three quarters of each layer's
filters in one step: every iteration rewinds to the fine-tuned weights anyway, so one step with five
retraining epochs costs less than two steps with two epochs each and keeps more accuracy), then exports dense / pruned /
compacted / INT8 ONNX and times them interleaved in one process under every profile.
Writes bench/results/deploy_resnet18.{json,md} and deploy_resnet18.{size,latency,accuracy}.png.

Why the `layer-filter` scope (LTH fraction of each layer's live filters, ranked inside the layer): the
`filter` scope ranks all filters of the network by one L2-norm threshold, and filter norms grow with
fan-in, so it empties the stem, the stride-2 convs and the 1x1 shortcuts first (measured: 63 of 64 stem
filters and all but one filter of layer2.0.conv1, layer3.0.conv1, layer4.0.conv1 and every downsample
conv after one 50 % step); ResNet-18 then falls to 24 % test accuracy. The results in bench/results/
were measured with this bench's former private schedule, which pruned exactly these counts, and with
the constant-learning-rate recipe of the time; re-run the bench to reproduce them with the current one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from deploy.bench import benchmark
from deploy.export_run import export_run
from deploy.report import write_report
from incop_core.config import validate
from incop_core.rundir import load_records
from incop_core.runner import run_pruning

ROOT = Path(__file__).resolve().parent
TARGETS = {"P4_compacted": 3.0, "P4_int8": 5.0, "P5": 20.0, "P6": 0.5, "accuracy_pp": 1.0}


def config(args):
    return validate({"seed": 0, "device": "cpu", "model": {"name": "resnet18"},
                     "data": {"name": "fashion-mnist", "train_subset": args.train_subset, "test_subset": args.test_subset},
                     "finetune_epochs": args.finetune_epochs,
                     "prune": {"iterations": args.iterations, "scope": "layer-filter", "max_epochs": args.epochs,
                               "schedule": {"kind": "lth", "fraction": args.fraction},
                               "criterion": {"kind": "fixed-epochs"}, "probe_size": 256, "probe_batch": 128}})


def figures(bench: dict, export: dict) -> dict:
    """P4-P6 from the benchmark and the export manifest, with the accuracy each variant keeps."""
    arts, edge = export["artifacts"], bench["profiles"]["edge-1t"]["models"]
    dense_acc = arts["dense"]["accuracy"]
    within = {n: (a["accuracy"] - dense_acc) * 100 >= -TARGETS["accuracy_pp"] for n, a in arts.items()}  # at most 1 pp lost
    kept = [n for n in arts if within[n] and n != "dense"]
    smallest = min(kept, key=lambda n: min(arts[n]["sizes"].values())) if kept else "dense"
    dense_sizes = arts["dense"]["sizes"]
    out = {"P4_compacted": edge["dense"]["p50_ms"] / edge["compacted"]["p50_ms"] if "compacted" in edge else None,
           "P4_int8": edge["dense"]["p50_ms"] / edge["int8"]["p50_ms"] if "int8" in edge else None,
           "P5": dense_sizes["raw"] / min(arts[smallest]["sizes"].values()),
           "P5_compressed_vs_compressed": min(dense_sizes.values()) / min(arts[smallest]["sizes"].values()),
           "P5_artifact": smallest, "P6": edge["dense"]["peak_share"],
           "accuracy_pp": {n: 100 * (a["accuracy"] - dense_acc) for n, a in arts.items()}}
    out["meets"] = {"P4_compacted": bool(out["P4_compacted"] and out["P4_compacted"] >= TARGETS["P4_compacted"] and within.get("compacted")),
                    "P4_int8": bool(out["P4_int8"] and out["P4_int8"] >= TARGETS["P4_int8"] and within.get("int8")),
                    "P5": out["P5"] >= TARGETS["P5"] and smallest != "dense", "P6": out["P6"] >= TARGETS["P6"]}
    return out


def headline(fig: dict, cfg) -> str:
    yes = lambda k: "meets" if fig["meets"][k] else "misses"  # noqa: E731
    acc = fig["accuracy_pp"]
    note = (f"Accuracy reads as 'kept', not 'gained': on this CPU budget the dense model is fine-tuned for "
            f"{cfg.finetune_epochs} epochs on {cfg.data.train_subset} images and the pruned model retrains "
            f"{cfg.prune.max_epochs} more epochs from those weights (SPEC 3.2 rewind), so it can score above dense.")
    return "\n".join([
        "## Figures (targets from issue #4)", "",
        f"- P4 dense ÷ compacted p50, edge-1t: **{fig['P4_compacted']:.2f}x** (target ≥ 3x; accuracy "
        f"{acc.get('compacted', float('nan')):+.2f} pp) — {yes('P4_compacted')} the target",
        f"- P4 dense ÷ INT8 p50, edge-1t: **{fig['P4_int8']:.2f}x** (target ≥ 5x; accuracy "
        f"{acc.get('int8', float('nan')):+.2f} pp) — {yes('P4_int8')} the target",
        f"- P5 dense raw ÷ smallest compressed artifact within 1 pp (`{fig['P5_artifact']}`): **{fig['P5']:.1f}x** "
        f"(compressed ÷ compressed {fig['P5_compressed_vs_compressed']:.1f}x; target ≥ 20x) — {yes('P5')} the target",
        f"- P6 dense achieved GFLOP/s ÷ measured peak, edge-1t: **{fig['P6']:.2f}** (target ≥ 0.5) — {yes('P6')} the target",
        "", note, ""])


def _rounded(times: dict) -> dict:
    return {k: round(v, 1) for k, v in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--train-subset", type=int, default=2500)
    parser.add_argument("--test-subset", type=int, default=1000)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=5, help="Retraining epochs per iteration.")
    parser.add_argument("--fraction", type=float, default=0.75, help="Share of each layer's surviving filters pruned per iteration.")
    parser.add_argument("--quick", action="store_true", help="Fewer timed runs.")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    cfg, times = config(args), {}
    start = time.perf_counter()
    run = run_pruning(cfg, args.runs_dir)
    times["prune_s"] = time.perf_counter() - start  # ~0 when the run was already finished (cached)
    times["training_wall_s_recorded"] = sum(r["wall_seconds"] for r in load_records(run))
    start = time.perf_counter()
    export = export_run(run, parity_images=args.test_subset)
    times["export_s"] = time.perf_counter() - start
    start = time.perf_counter()
    rounds = {"rounds": 3, "per_round": 4} if args.quick else {}
    bench = benchmark(export.paths, ("edge-1t", "cpu-2t", "throughput"), baseline="dense", warmup=5, **rounds)
    times["bench_s"] = time.perf_counter() - start
    fig = figures(bench, export.manifest)
    extra = {"figures": fig, "targets": TARGETS, "config": cfg.model_dump(mode="json"), "run": run.name,
             "stage_seconds": times, "command": "python bench/deploy_resnet18.py " + " ".join(argv or sys.argv[1:])}
    paths = write_report(bench, args.out, "deploy_resnet18", export=export.manifest,
                         title="ResNet-18 on FashionMNIST: dense vs filter-pruned / compacted / INT8 (onnxruntime CPU)",
                         extra=extra, preface=headline(fig, cfg) + f"\nReproduce: `{extra['command'].strip()}` "
                                                              f"(stage seconds: {_rounded(times)}).\n")
    print(headline(fig, cfg))
    print(_rounded(times), {k: str(v) for k, v in paths.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
