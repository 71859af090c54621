"""The main job's real figures (issue #11): `incop pipeline` with its own defaults, measured end to end.

    .venv/bin/python bench/main_job.py     # ~15-20 min on 2 cores; re-running reuses the finished stages

Runs the `prune-and-export` flow with `PipelineParams()` exactly as `incop pipeline` does (Prefect's
embedded server; only the runs and registry folders are moved under bench/results/main_job.work/), then
writes bench/results/main_job.json: the dense model's plateau evidence (fine-tuning epochs, validation
gain over its last 2 epochs), dense and per-variant validation and test accuracy (full test split),
sizes, p50 per profile, which variant was published and why, its edge-1t and cpu-2t speed-ups, and the
issue's targets with meets/misses.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from incop_core.fileio import read_json, write_json_atomic
from incop_core.report import dense_plateau
from incop_core.rundir import load_records

ROOT = Path(__file__).resolve().parent
TARGETS = {"edge_speedup": 2.5, "size_ratio": 4.0, "test_loss_pp": 1.0, "wall_minutes": 20.0}


def figures(export: dict, bench: dict, published: str, reasons: dict, records: list[dict], wall: float) -> dict:
    arts = export["artifacts"]
    dense = arts["dense"]
    variants = {}
    for name, entry in arts.items():
        variants[name] = {"val_acc": entry["val_accuracy"], "test_acc": entry["accuracy"],
                          "test_delta_pp": 100 * (entry["accuracy"] - dense["accuracy"]),
                          "sizes": entry["sizes"], "zstd_ratio_vs_dense": dense["sizes"]["zstd"] / entry["sizes"]["zstd"],
                          "p50_ms": {p: r["models"][name]["p50_ms"] for p, r in bench["profiles"].items() if name in r["models"]},
                          "speedup_p50": {p: r["models"][name].get("speedup_p50") for p, r in bench["profiles"].items()
                                          if name in r["models"]},
                          "why": reasons.get(name)}
    chosen = variants[published]
    out = {"published": published, "edge_1t_speedup": chosen["speedup_p50"].get("edge-1t"),
           "cpu_2t_speedup": chosen["speedup_p50"].get("cpu-2t"), "size_ratio_zstd": chosen["zstd_ratio_vs_dense"],
           "test_loss_pp": -chosen["test_delta_pp"], "test_images": export["test_images"], "val_images": export.get("val_images"),
           "dense": dense_plateau(records), "variants": variants, "wall_minutes": wall / 60,
           "retrain_epochs": sum(r["epochs"] for r in records[1:]), "iterations": len(records) - 1,
           "remaining_fraction": records[-1]["remaining_fraction"]}
    out["meets"] = {"edge_speedup": (out["edge_1t_speedup"] or 0) >= TARGETS["edge_speedup"],
                    "size_ratio": out["size_ratio_zstd"] >= TARGETS["size_ratio"],
                    "test_loss_pp": out["test_loss_pp"] <= TARGETS["test_loss_pp"],
                    "dense_plateau": out["dense"]["plateaued"], "wall_minutes": out["wall_minutes"] <= TARGETS["wall_minutes"]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "results" / "main_job.work")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "main_job.json")
    args = ap.parse_args(argv)
    (args.work / "prefect").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(args.work / "prefect"))  # before Prefect is imported
    from deploy.pipeline.summary import explain_choice
    from flows.cli import _local_only
    from flows.params import PipelineParams
    from flows.pipeline import prune_and_export

    _local_only()
    params = PipelineParams(runs_dir=str(args.work / "runs"), registry=str(args.work / "registry"))
    start = time.perf_counter()
    result = prune_and_export(params)
    wall = time.perf_counter() - start
    run = Path(result["run"])
    export = read_json(run / "export" / "export.json")
    bench = read_json(run / "report" / "benchmark.json")
    published, reasons = explain_choice(export, bench, params.publish_variant, params.publish_profile)
    out = figures(export, bench, published, reasons, load_records(run), wall)
    out.update({"config": params.run.model_dump(mode="json"), "profiles": params.profiles, "bench_rounds": params.bench_rounds,
                "system": bench["system"], "note": "wall_minutes counts only stages this invocation ran (finished ones are reused); "
                "delete the work folder for a cold run.", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    write_json_atomic(args.out, out)
    print(result["summary"])
    print(f"published {published}: edge-1t {out['edge_1t_speedup']:.2f}x, cpu-2t {out['cpu_2t_speedup']:.2f}x, "
          f"{out['size_ratio_zstd']:.1f}x smaller (zstd), test {out['test_loss_pp']:.2f} pp lost; "
          f"dense plateau gain {out['dense']['val_gain_last_2_epochs_pp']:.2f} pp; {out['wall_minutes']:.1f} min")
    print(f"meets: {out['meets']}\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
