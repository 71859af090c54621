"""What the pipeline tells its users: which variant to ship, and its gains against the dense model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from incop_core.fileio import read_json, write_json_atomic

ACCURACY_KEPT = 0.01  # a variant "keeps" accuracy within 1 percentage point of dense
NIL_GAIN = 1.10  # below this p50 speed-up a latency gain is reported as nil


def choose_variant(export: dict, preference: str = "best") -> str:
    """`best`: the smallest (zstd) variant whose test accuracy is within 1 pp of dense; else the named one."""
    artifacts = export["artifacts"]
    if preference != "best":
        return preference if preference in artifacts else "pruned"
    floor = artifacts["dense"]["accuracy"] - ACCURACY_KEPT
    kept = [n for n, a in artifacts.items() if a["accuracy"] >= floor and n != "pruned-sparse"]
    return min(kept or ["dense"], key=lambda n: artifacts[n]["sizes"]["zstd"])


def bench_rows(export: dict, bench: dict) -> list[dict]:
    """One row per profile and variant: latency, speed-up, share of peak, sizes and accuracy."""
    rows = []
    for profile, result in bench["profiles"].items():
        for name, s in result["models"].items():
            entry = export["artifacts"].get(name, {})
            sizes = entry.get("sizes", bench["models"][name]["sizes"])
            rows.append({"profile": profile, "variant": name, "p50 ms": round(s["p50_ms"], 3),
                         "p90 ms": round(s["p90_ms"], 3), "speed-up": round(s.get("speedup_p50", 1.0), 2),
                         "peak share": None if s.get("peak_share") is None else round(s["peak_share"], 3),
                         "raw KB": round(sizes["raw"] / 1024, 1), "zstd KB": round(sizes["zstd"] / 1024, 1),
                         "test acc %": None if "accuracy" not in entry else round(100 * entry["accuracy"], 2)})
    return rows


def _latency_note(name: str, speed: dict, bench: dict) -> str:
    """A plain sentence when a variant's latency gain is nil, so nominal sparsity is not taken for speed."""
    flops = bench["models"][name].get("flops"), bench["models"]["dense"].get("flops")
    if name != "int8" and flops[0] and flops[0] == flops[1]:
        return (" No real latency gain: it computes the same FLOPs as dense (its zeros still go through "
                "onnxruntime's dense kernels), so any measured difference is noise.")
    if speed and max(speed.values()) < NIL_GAIN:
        return " No real latency gain was measured."
    return ""


def _gain_sentences(export: dict, bench: dict) -> list[str]:
    dense = export["artifacts"]["dense"]
    lines = []
    for name, entry in export["artifacts"].items():
        if name == "dense":
            continue
        size = dense["sizes"]["zstd"] / entry["sizes"]["zstd"]
        speed = {p: r["models"][name]["speedup_p50"] for p, r in bench["profiles"].items()
                 if r["models"].get(name, {}).get("speedup_p50") is not None}
        speed_text = ", ".join(f"{p} {v:.2f}x" for p, v in speed.items())
        lines.append(f"- **{name}**: {size:.1f}x smaller compressed, p50 speed-up {speed_text}, test accuracy "
                     f"{100 * entry['accuracy']:.2f} % ({100 * (entry['accuracy'] - dense['accuracy']):+.2f} pp)."
                     + _latency_note(name, speed, bench))
    return lines


def summary_markdown(totals: dict, export: dict, bench: dict, chosen: str, published: Optional[dict]) -> str:
    where = (f"Published **{published['name']}** version **{published['version']}** (`{chosen}`, sha256 "
             f"`{published['files'][published['model_file']]['sha256'][:16]}…`)." if published else "Not published.")
    return "\n".join([
        "# prune-and-export", "",
        f"Pruning: {totals['iterations']} iterations, {totals['retrain_epochs']} retraining epochs, "
        f"{100 * totals['final_remaining_fraction']:.1f} % of weights left, final test accuracy "
        f"{100 * totals['final_test_acc']:.2f} %, flow computation {100 * totals['flow_share']:.1f} % of pruning time.", "",
        "Against the dense ONNX model, measured side by side in this run:", *_gain_sentences(export, bench), "", where, ""])


def published_metrics(export: dict, bench: dict, chosen: str) -> dict:
    """The small set of figures a manifest carries for the shipped variant."""
    entry = export["artifacts"][chosen]
    latency = {p: {"p50_ms": r["models"][chosen]["p50_ms"], "p90_ms": r["models"][chosen]["p90_ms"],
                   "speedup_vs_dense": r["models"][chosen].get("speedup_p50")}
               for p, r in bench["profiles"].items() if chosen in r["models"]}
    return {"test_accuracy": entry["accuracy"], "dense_test_accuracy": export["artifacts"]["dense"]["accuracy"],
            "sparsity": export["sparsity"]["sparsity"], "latency": latency, "sizes": entry["sizes"]}


def cached_benchmark(export_dir: Path, export: dict, profiles: list[str], rounds: int) -> dict:
    """Benchmark every exported variant against dense; reuse the stored result for the same settings."""
    from deploy.bench import benchmark

    path = Path(export_dir) / f"bench-{'-'.join(profiles)}-r{rounds}.json"
    if path.is_file():
        return read_json(path)
    models = {name: str(Path(export_dir) / a["file"]) for name, a in export["artifacts"].items()}
    result = benchmark(models, profiles, baseline="dense", rounds=rounds)
    write_json_atomic(path, result)
    return result
