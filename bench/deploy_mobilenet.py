"""Issue 21: MobileNetV2 and MobileNetV3-small on FashionMNIST with the main job's pruning, `scope: group` beside
`layer-filter`, exported, timed and chosen by the pipeline's own publishing rule.

    .venv/bin/python bench/deploy_mobilenet.py --runs-dir bench/.runs                 # CPU budget (defaults)
    .venv/bin/python bench/deploy_mobilenet.py --device cuda --train-subset 0         # a GPU: the full split
    .venv/bin/python bench/deploy_mobilenet.py --runs-dir bench/.runs --train-subset 20000 --val-size 5000 \
        --finetune-epochs 15 --models mobilenet_v2 --name deploy_mobilenet_v2_main  # the main job's data budget
    --set prune.round_to=null ...   # what a run varies on top of the main job's settings (recorded per result)

Every run uses the main job's prune settings (`flows.params.default_run`: LTH 0.2 per iteration, 2 iterations,
round_to 8, at most 5 retraining epochs, the default InCoP criterion) with the model and scope swapped; the
dense network is fine-tuned with the product's cosine schedule for `--finetune-epochs`, and the result says whether
validation still gained more than 0.3 pp over its last 2 epochs (not at plateau). Accuracies are measured through
onnxruntime on the FULL test split; the published variant is the pipeline's rule (validation accuracy within 1 pp of
dense, not slower than dense on edge-1t). All variants of one run are timed interleaved in one process per profile.
Writes bench/results/deploy_mobilenet.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from deploy.measure.timing import benchmark
from deploy.export.exporter import export_run
from deploy.decisions.summary import explain_choice
from flows.params import default_run
from incop_core.foundations.fileio import write_json_atomic, write_text_atomic
from incop_core.imp.records import dense_plateau, totals
from incop_core.imp.rundir import load_records
from incop_core.imp.runner import run_pruning

ROOT = Path(__file__).resolve().parent
PROFILES = ("edge-1t", "cpu-2t")
TARGET = {"speedup_edge_1t": 2.0, "test_loss_pp": 1.0}


def config(args, model: str, scope: str):
    """The main job's run with `model` and `scope` swapped in, on the bench's data budget."""
    raw = default_run().model_dump(mode="json")
    raw.update(device=args.device, finetune_epochs=args.finetune_epochs)
    raw["model"] = {"name": model}
    raw["data"].update(train_subset=args.train_subset or None, val_size=args.val_size)
    raw["prune"].update(scope=scope, max_epochs=args.epochs, iterations=args.iterations)
    for setting in args.set:  # `section.key=value`, a JSON value (or a bare string): what the bench varies
        key, _, value = setting.partition("=")
        *parents, leaf = key.split(".")
        target = raw
        for part in parents:
            target = target[part]
        try:
            target[leaf] = json.loads(value)
        except json.JSONDecodeError:
            target[leaf] = value
    return type(default_run()).model_validate(raw)


def measure(args, model: str, scope: str) -> dict:
    cfg = config(args, model, scope)
    start = time.perf_counter()
    run = run_pruning(cfg, args.runs_dir)
    records = load_records(run)
    trained = time.perf_counter() - start
    export = export_run(run, parity_images=1000)
    rounds = {"rounds": 3, "per_round": 4} if args.quick else {}
    bench = benchmark(export.paths, PROFILES, baseline="dense", warmup=5, **rounds)
    arts = export.manifest["artifacts"]
    published, reasons = explain_choice(export.manifest, bench, "best", "edge-1t")
    dense_acc = arts["dense"]["accuracy"]
    per_variant = {
        name: {"test_acc": a["accuracy"], "val_acc": a["val_accuracy"], "test_pp": 100 * (a["accuracy"] - dense_acc),
               "size_bytes": min(a["sizes"].values()),
               **{f"p50_ms_{p}": bench["profiles"][p]["models"][name]["p50_ms"] for p in PROFILES},
               **{f"speedup_{p}": bench["profiles"][p]["models"][name].get("speedup_p50") for p in PROFILES}}
        for name, a in arts.items() if name in bench["profiles"]["edge-1t"]["models"]}
    chosen = per_variant[published]
    return {"model": model, "scope": scope, "settings": list(args.set), "run": run.name,
            "dense": dense_plateau(records),
            "retrain_epochs": totals(records)["retrain_epochs"], "remaining": records[-1]["remaining_fraction"],
            "train_seconds": round(trained, 1), "variants": per_variant, "published": published,
            "published_why": reasons[published], "test_images": export.manifest["test_images"],
            "meets": {"speedup_edge_1t": (chosen["speedup_edge-1t"] or 1.0) >= TARGET["speedup_edge_1t"],
                      "test_loss_pp": chosen["test_pp"] >= -TARGET["test_loss_pp"]}}


def table(results: list[dict]) -> str:
    lines = ["| model | scope | published | edge-1t speed-up | cpu-2t speed-up | test pp vs dense | size (kB) | "
             "compacted edge-1t | dense plateau |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        v, c = r["variants"][r["published"]], r["variants"].get("compacted", {})
        lines.append(f"| {r['model']} | {r['scope']} | `{r['published']}` | {v['speedup_edge-1t'] or 1:.2f}x | "
                     f"{v['speedup_cpu-2t'] or 1:.2f}x | {v['test_pp']:+.2f} | {v['size_bytes'] / 1e3:.0f} | "
                     f"{(c.get('speedup_edge-1t') or float('nan')):.2f}x | "
                     f"{'yes' if r['dense']['plateaued'] else 'no'} ({100 * r['dense']['test_acc']:.2f} % test) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2", "mobilenet_v3_small"])
    parser.add_argument("--scopes", nargs="+", default=["group", "layer-filter"])
    parser.add_argument("--train-subset", type=int, default=6000, help="Training images (0: the full split).")
    parser.add_argument("--val-size", type=int, default=2000, help="Validation images, from outside the subset.")
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5, help="Retraining epochs per iteration at most.")
    parser.add_argument("--device", default="cpu",
                        help="Where to train: cpu, cuda or auto (benchmarks run on the CPU).")
    parser.add_argument("--quick", action="store_true", help="Fewer timed runs.")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="Run settings on top of the main job's (prune.round_to=auto, prune.rewind=previous, ...).")
    parser.add_argument("--name", default="deploy_mobilenet", help="Result file stem under --out.")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    command = "python bench/deploy_mobilenet.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = []
    for model in args.models:
        for scope in args.scopes:
            results.append(measure(args, model, scope))
            print(json.dumps({k: results[-1][k] for k in ("model", "scope", "published", "meets", "retrain_epochs")}),
                  flush=True)
            write_results(args, results, command)  # after every run: an hours-long bench keeps what it finished
    print(table(results))
    return 0


def write_results(args, results: list[dict], command: str) -> None:
    write_json_atomic(args.out / f"{args.name}.json", {"results": results, "targets": TARGET, "command": command})
    budget = ("the full training split" if not args.train_subset else
              f"a {args.train_subset}-image training subset and {args.finetune_epochs} fine-tuning epochs (CPU budget)")
    write_text_atomic(args.out / f"{args.name}.md", "\n".join([
        "# MobileNet on FashionMNIST: `scope: group` vs `layer-filter` (issue 21)", "",
        f"Trained on {budget}, FashionMNIST's own 28x28 inputs; accuracy on the full test split "
        f"({results[0]['test_images']} images); speed-ups are p50 against dense in the same process.", "",
        table(results), "", f"Reproduce: `{command}`", ""]))


if __name__ == "__main__":
    sys.exit(main())
