"""What the pipeline tells its users: which variant to ship, and its gains against the dense model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from incop_core.foundations.fileio import read_json, write_json_atomic

from ..errors import DeployError

ACCURACY_KEPT = 0.01  # a variant "keeps" accuracy within 1 percentage point of dense (on validation)
NIL_GAIN = 1.10  # below this p50 speed-up a latency gain is reported as nil
TIE = 1.05  # p50s within 5 % of the fastest candidate's are a tie on a shared CPU: the smaller file wins


def _excluded(name: str, entry: dict, dense: dict, timings: dict, profile: str) -> Optional[str]:
    """Why `name` may not be published under `best`, or None when it may."""
    p50, dense_p50 = timings.get(name, {}).get("p50_ms"), timings["dense"]["p50_ms"]
    source = entry.get("quantized_from")
    if name == "pruned-sparse":
        return "not published: onnxruntime densifies sparse initializers, so it runs as `pruned`"
    if entry["val_accuracy"] < dense["val_accuracy"] - ACCURACY_KEPT:
        return (f"validation accuracy {100 * entry['val_accuracy']:.2f} % is more than 1 pp below dense "
                f"({100 * dense['val_accuracy']:.2f} %)")
    if p50 is None:
        return f"not benchmarked on {profile}"
    if p50 > dense_p50:
        return f"slower than dense on {profile} (p50 {p50:.4g} ms vs {dense_p50:.4g} ms)"
    if source and source in timings and p50 >= timings[source]["p50_ms"]:
        return (f"INT8 is not faster than `{source}` on {profile} "
                f"(p50 {p50:.4g} ms vs {timings[source]['p50_ms']:.4g} ms)")
    return None


def explain_choice(export: dict, bench: dict, preference: str = "best", profile: str = "edge-1t") -> tuple[str, dict]:
    """The variant to publish and, per variant, why it was or was not chosen.

    `best`: among variants whose validation accuracy is within 1 pp of dense and whose p50 on `profile`
    is not above dense's (INT8 also only where it beats the float model it was quantised from), the
    fastest; p50s within 5 % count as a tie, which the smaller (zstd) file wins. Test accuracy chooses
    nothing. Any other preference names the variant to publish.
    """
    artifacts = export["artifacts"]
    if preference != "best":
        chosen = preference if preference in artifacts else "pruned"
        return chosen, {chosen: "named by publish_variant"}
    if any("val_accuracy" not in a for a in artifacts.values()):
        raise DeployError("the export has no validation accuracy (made by an older incop); delete the run's export/ "
                          "folder and run the pipeline again to re-export it")
    timings = bench.get("profiles", {}).get(profile, {}).get("models")
    if not timings or "dense" not in timings:
        raise DeployError(f"profile {profile} was not benchmarked, so no latency can choose the published variant; "
                          f"add it to the pipeline's profiles")
    reasons = {name: _excluded(name, entry, artifacts["dense"], timings, profile) for name, entry in artifacts.items()}
    candidates = {name: timings[name]["p50_ms"] for name, why in reasons.items() if why is None}
    fastest = min(candidates.values())
    tied = [n for n, p50 in candidates.items() if p50 <= fastest * TIE]
    chosen = min(tied, key=lambda n: artifacts[n]["sizes"]["zstd"])
    for name, p50 in candidates.items():
        reasons[name] = ("within 5 % of the fastest but larger" if name in tied
                         else f"slower on {profile} (p50 {p50:.4g} ms)")
    reasons[chosen] = ("chosen: no other variant is within 1 pp of dense on validation and faster" if chosen == "dense"
                       else f"chosen: fastest on {profile} (p50 {candidates[chosen]:.4g} ms vs dense "
                            f"{timings['dense']['p50_ms']:.4g} ms) within 1 pp of dense on validation")
    return chosen, reasons


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
                         "val acc %": None if "val_accuracy" not in entry else round(100 * entry["val_accuracy"], 2),
                         "test acc %": None if "accuracy" not in entry else round(100 * entry["accuracy"], 2)})
    return rows


def _latency_note(name: str, speed: dict, bench: dict) -> str:
    """A plain sentence when a variant's latency gain is nil, so nominal sparsity is not taken for speed."""
    flops = bench["models"][name].get("flops"), bench["models"]["dense"].get("flops")
    if not name.startswith("int8") and flops[0] and flops[0] == flops[1]:
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
        val = (f"validation {100 * entry['val_accuracy']:.2f} % "
               f"({100 * (entry['val_accuracy'] - dense['val_accuracy']):+.2f} pp), "
               if "val_accuracy" in entry else "")
        lines.append(f"- **{name}**: {size:.1f}x smaller compressed, p50 speed-up {speed_text}, accuracy {val}test "
                     f"{100 * entry['accuracy']:.2f} % ({100 * (entry['accuracy'] - dense['accuracy']):+.2f} pp)."
                     + _latency_note(name, speed, bench))
    return lines


def plural(count: float, noun: str) -> str:
    """`1 iteration`, `2 iterations`, `0.75 retraining epochs` (counts up to 3 significant digits)."""
    return f"{count:.3g} {noun}" + ("" if count == 1 else "s")


def summary_markdown(totals: dict, export: dict, bench: dict, chosen: str, published: Optional[dict],
                     reasons: Optional[dict] = None, release: Optional[str] = None) -> str:
    where = (f"Published **{published['name']}** version **{published['version']}** (`{chosen}`, sha256 "
             f"`{published['files'][published['model_file']]['sha256'][:16]}…`)." if published else "Not published.")
    why = [f"- `{name}`: {reason}" for name, reason in (reasons or {}).items()]
    return "\n".join([
        "# prune-and-export", "",
        f"Pruning: {plural(totals['iterations'], 'iteration')}, "
        f"{plural(totals['retrain_epochs'], 'retraining epoch')}, "
        f"{100 * totals['final_remaining_fraction']:.1f} % of weights left, final test accuracy "
        f"{100 * totals['final_test_acc']:.2f} %, flow computation {100 * totals['flow_share']:.1f} % of pruning time.",
        "",
        "Against the dense ONNX model, measured side by side in this run:", *_gain_sentences(export, bench), "", where,
        *(["", f"Release: {release[0].upper()}{release[1:]}."] if release else []),
        *(["", "Why this variant:", *why] if why else []), ""])


def published_metrics(export: dict, bench: dict, chosen: str) -> dict:
    """The small set of figures a manifest carries for the shipped variant."""
    entry = export["artifacts"][chosen]
    latency = {p: {"p50_ms": r["models"][chosen]["p50_ms"], "p90_ms": r["models"][chosen]["p90_ms"],
                   "speedup_vs_dense": r["models"][chosen].get("speedup_p50")}
               for p, r in bench["profiles"].items() if chosen in r["models"]}
    dense = export["artifacts"]["dense"]
    return {"test_accuracy": entry["accuracy"], "dense_test_accuracy": dense["accuracy"],
            "val_accuracy": entry.get("val_accuracy"), "dense_val_accuracy": dense.get("val_accuracy"),
            "sparsity": export["sparsity"]["sparsity"], "latency": latency, "sizes": entry["sizes"]}


def cached_benchmark(export_dir: Path, export: dict, profiles: list[str], rounds: int) -> dict:
    """Benchmark every exported variant against dense; reuse the stored result for the same settings."""
    from deploy.measure.timing import benchmark

    path = Path(export_dir) / f"bench-{'-'.join(profiles)}-r{rounds}.json"
    if path.is_file():
        return read_json(path)
    models = {name: str(Path(export_dir) / a["file"]) for name, a in export["artifacts"].items()}
    result = benchmark(models, profiles, baseline="dense", rounds=rounds)
    write_json_atomic(path, result)
    return result
