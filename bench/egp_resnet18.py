"""EGP against global magnitude IMP at matched sparsity (ResNet-18, FashionMNIST, CPU), one run.

    .venv/bin/python bench/egp_resnet18.py            # ~40 min on 2 cores (the dense fine-tune is shared
                                                      # with bench/deploy_resnet18.py when that ran first)

The dense ResNet-18 is the plateaued one of bench/deploy_resnet18.py (same data, fine-tuning and probe
settings, so the run reuses its cached fine-tune): the JSON and markdown state its epochs and its
validation gain over the last 2 epochs. Accuracies are measured through onnxruntime on the full test split.

Both use the same stopping criterion. For each: blocks removed by depth reduction, channels removed by
compaction, layers found always-on / always-off, test accuracy through onnxruntime, ONNX size and the
`edge-1t` p50 latency against the dense ONNX model, all measured side by side.
Writes bench/results/egp_resnet18.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from deploy.measure.timing import benchmark
from deploy.measure.runtime import accuracy
from deploy.measure.sizes import file_sizes
from deploy.export.compact import compact, max_abs_difference
from deploy.export.depth import reduce_depth
from deploy.export.onnx_export import export_onnx
from deploy.export.reopen import load_run, normalised
from incop_core.imp.config import validate
from incop_core.pruning.entropy import relu_states
from incop_core.foundations.fileio import write_json_atomic, write_text_atomic
from incop_core.imp.records import dense_plateau, plateau_sentence
from incop_core.imp.rundir import load_records
from incop_core.imp.runner import run_pruning

ROOT = Path(__file__).resolve().parent
PROBE = (512, 128)  # as bench/deploy_resnet18.py, so both reuse one dense fine-tune


def config(args, schedule: dict, scope: str):
    return validate({"seed": 0, "device": args.device, "finetune_epochs": args.finetune_epochs,
                     "data": {"name": "fashion-mnist", "train_subset": args.train_subset, "val_size": args.val_size},
                     "model": {"name": "resnet18"},
                     "prune": {"iterations": args.iterations, "max_epochs": args.max_epochs, "scope": scope,
                               "schedule": schedule, "criterion": {"kind": "accuracy"},
                               "probe_size": PROBE[0], "probe_batch": PROBE[1]}})


def deployable(run: Path, out: Path, name: str) -> dict:
    """Depth-reduce, compact, export and check one run's final model; returns what was removed."""
    loaded = load_run(run)
    model = loaded.model(loaded.final)
    probe, _ = normalised(loaded.probe_split(), loaded.data)
    states = relu_states(model, lambda: [(probe[i:i + 128], None) for i in range(0, len(probe), 128)])
    reduced, blocks = reduce_depth(model)
    result = compact(reduced, probe[:4])
    worst = max_abs_difference(model, result.model, probe)
    path = export_onnx(result.model, probe[:2], out / f"{name}.onnx")
    images, labels = normalised(loaded.data.test, loaded.data)
    return {"run": run.name, "remaining_fraction": loaded.record["remaining_fraction"], "blocks_removed": blocks,
            "channels_removed": result.channels_removed, "max_abs_vs_masked": worst,
            "linear_layers": [n for n, s in states.items() if s["removable"] == "linear"],
            "dead_layers": [n for n, s in states.items() if s["removable"] == "dead"],
            "convs": sum(isinstance(m, torch.nn.Conv2d) for m in result.model.modules()),
            "test_acc_onnx": accuracy(path, images.numpy(), labels.numpy()), "sizes": file_sizes(path),
            "path": str(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-subset", type=int, default=12000)
    parser.add_argument("--val-size", type=int, default=5000)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=2)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()
    start, work = time.perf_counter(), args.runs_dir / "egp_onnx"
    egp = run_pruning(config(args, {"kind": "egp"}, "global"), args.runs_dir)
    egp_left = load_run(egp).record["remaining_fraction"]
    fraction = 1 - egp_left ** (1 / args.iterations)  # IMP reaches the same remaining weights in as many iterations
    imp = run_pruning(config(args, {"kind": "lth", "fraction": round(fraction, 4)}, "global"), args.runs_dir)
    dense = load_run(egp)
    images, labels = normalised(dense.data.test, dense.data)
    dense_path = export_onnx(dense.model(0), images[:2], work / "dense.onnx")
    variants = {"dense": {"test_acc_onnx": accuracy(dense_path, images.numpy(), labels.numpy()),
                          "sizes": file_sizes(dense_path), "path": str(dense_path),
                          "convs": sum(isinstance(m, torch.nn.Conv2d) for m in dense.model(0).modules())},
                "egp": deployable(egp, work, "egp"), "imp": deployable(imp, work, "imp")}
    timing = benchmark({k: Path(v["path"]) for k, v in variants.items()}, ["edge-1t"], baseline="dense")
    for name, v in variants.items():
        v["edge_1t_p50_ms"] = timing["profiles"]["edge-1t"]["models"][name]["p50_ms"]
        v["speedup_vs_dense"] = timing["profiles"]["edge-1t"]["models"][name]["speedup_p50"]
    lines = ["| variant | remaining % | blocks removed | channels removed | convs | test acc % (ORT) | zstd KB | "
             "edge-1t p50 ms | speed-up |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, v in variants.items():
        lines.append(f"| {name} | {100 * v.get('remaining_fraction', 1.0):.1f} | {len(v.get('blocks_removed', []))} | "
                     f"{v.get('channels_removed', 0)} | {v['convs']} | {100 * v['test_acc_onnx']:.2f} | "
                     f"{v['sizes']['zstd'] / 1024:.0f} | {v['edge_1t_p50_ms']:.2f} | {v['speedup_vs_dense']:.2f} |")
    plateau = dense_plateau(load_records(egp))
    lines += ["", plateau_sentence(plateau, args.train_subset, len(labels)) + " (CPU budget: a training subset.)"]
    meta = {"args": {k: str(v) for k, v in vars(args).items()}, "imp_fraction": fraction, "dense": plateau,
            "bench_wall_seconds": time.perf_counter() - start, "system": timing["system"]}
    write_json_atomic(args.out / "egp_resnet18.json", {"meta": meta, "variants": variants})
    write_text_atomic(args.out / "egp_resnet18.md", "\n".join(lines) + "\n\n" + json.dumps(
        {n: {"blocks_removed": v.get("blocks_removed"), "linear_layers": v.get("linear_layers"),
             "dead_layers": v.get("dead_layers")} for n, v in variants.items()}, indent=1) + "\n")
    print("\n".join(lines))
    print(json.dumps(meta, indent=1, default=str))


if __name__ == "__main__":
    main()
