"""The deployment report: ratios to the dense baseline, plain sentences, JSON + markdown + PNG charts.

Everything but write_report is a pure function of the benchmark dict (and the export manifest,
when there is one, for accuracy and sparsity).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from incop_core.foundations.fileio import write_json_atomic, write_text_atomic

NIL_GAIN = 1.10  # a p50 speed-up below this is reported as no gain (within run-to-run noise on a shared CPU)


def variant_rows(bench: dict, export: Optional[dict] = None) -> dict[str, dict]:
    """One row per variant: sizes, accuracy and, per profile, latency and ratios to the baseline."""
    base = bench["baseline"]
    base_sizes = bench["models"][base]["sizes"]
    accuracy = {name: a.get("accuracy") for name, a in (export or {}).get("artifacts", {}).items()}
    rows = {}
    for name, info in bench["models"].items():
        sizes = info["sizes"]
        row = {"sizes": sizes, "size_ratio_raw": base_sizes["raw"] / sizes["raw"],
               "size_ratio_smallest": base_sizes["raw"] / min(sizes.values()),
               "size_ratio_compressed": min(base_sizes.values()) / min(sizes.values()),
               "flops": info["flops"], "parameters": info["parameters"], "nonzero": info["nonzero"],
               "accuracy": accuracy.get(name), "latency": {}}
        if row["accuracy"] is not None and accuracy.get(base) is not None:
            row["accuracy_delta_pp"] = 100 * (row["accuracy"] - accuracy[base])
        for profile, result in bench["profiles"].items():
            s = result["models"][name]
            row["latency"][profile] = {k: s.get(k) for k in ("p50_ms", "p90_ms", "p99_ms", "spread", "throughput_per_s",
                                                             "speedup_p50", "gflops", "peak_share")}
        rows[name] = row
    return rows


def _nil_gain(name: str, profiles: list[tuple[str, float, float]], base: str, sparsity: Optional[float]) -> str:
    """One sentence for a variant without a latency gain on `profiles` ([(profile, its p50, base p50)])."""
    where = ", ".join(f"{p} {mine:.3g} ms vs {theirs:.3g} ms (x{theirs / mine:.2f})" for p, mine, theirs in profiles)
    slower = all(theirs / mine < 1 / NIL_GAIN for _, mine, theirs in profiles)
    verdict = f"is slower than {base}" if slower else "has no latency gain"
    why = ""
    if name.startswith("pruned") and sparsity is not None:
        why = (f": its {100 * sparsity:.1f} % zero weights are nominal sparsity, which onnxruntime's dense CPU "
               f"kernels multiply like any other number")
    return f"{name} {verdict} over {base} (p50 {where}){why}."


def findings(bench: dict, export: Optional[dict] = None) -> list[str]:
    """Plain sentences: nil latency gains named as such, so nominal sparsity is never read as speed."""
    base, sentences = bench["baseline"], []
    sparsity = (export or {}).get("sparsity", {}).get("sparsity")
    for name, row in variant_rows(bench, export).items():
        nil = [(profile, lat["p50_ms"], bench["profiles"][profile]["models"][base]["p50_ms"])
               for profile, lat in row["latency"].items()
               if name != base and lat["speedup_p50"] is not None and lat["speedup_p50"] < NIL_GAIN]
        if nil:
            sentences.append(_nil_gain(name, nil, base, sparsity))
    if "pruned-sparse" in bench["models"]:
        sentences.append("pruned-sparse stores its sparse tensors compactly on disk only; onnxruntime densifies "
                         "them when it loads the model, so it runs exactly like pruned.")
    if any(name.startswith("int8") for name in bench["models"]):
        sentences.append("Share of peak compares multiply-adds per second with the float32 GEMM peak; INT8 kernels "
                         "do more of them per cycle, so an INT8 share can exceed 1.")
    return sentences


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value, spec: str, empty: str = "") -> str:
    return empty if value is None else format(value, spec)


def markdown(bench: dict, export: Optional[dict] = None, title: str = "Deployment benchmark", preface: str = "") -> str:
    rows, system = variant_rows(bench, export), bench["system"]
    out = [f"# {title}", "", *([preface, ""] if preface else []),
           f"{system['cpu']} ({system['cores']} cores; {', '.join(system['simd_flags'])}), "
           f"onnxruntime {system['onnxruntime']} {system['provider']}; baseline `{bench['baseline']}`; "
           f"all variants timed interleaved in one run. {bench['created']}", "", "## Size and accuracy", ""]
    out.append(_table(["variant", "raw bytes", "gzip", "zstd", "baseline raw / smallest", "parameters", "GFLOP/sample",
                       "accuracy %", "vs baseline pp"],
                      [[n, r["sizes"]["raw"], r["sizes"]["gzip"], r["sizes"]["zstd"],
                        f"{r['size_ratio_smallest']:.1f}x", r["parameters"], f"{r['flops'] / 1e9:.4g}",
                        _fmt(r["accuracy"] and 100 * r["accuracy"], ".2f"),
                        _fmt(r.get("accuracy_delta_pp"), "+.2f")] for n, r in rows.items()]))
    for profile, result in bench["profiles"].items():
        p = result["profile"]
        out += ["", f"## Latency: {profile} ({p['description']}; graph optimisation {p['optimization']}, "
                f"denormals as zero {p['denormal_as_zero']})", "",
                f"Measured peak: {result['peak']['gflops']:.1f} GFLOP/s (float32 {result['peak']['matmul_n']}^3 MatMul "
                f"on the same threads).", ""]
        out.append(_table(["variant", "p50 ms", "p90 ms", "p99 ms", "spread (IQR/p50)", "per s", "speed-up p50",
                           "GFLOP/s", "of peak"],
                          [[n, f"{l['p50_ms']:.3f}", f"{l['p90_ms']:.3f}", f"{l['p99_ms']:.3f}", f"{l['spread']:.3f}",
                            f"{l['throughput_per_s']:.1f}", _fmt(l["speedup_p50"], ".2f"), f"{l['gflops']:.1f}",
                            _fmt(l["peak_share"], ".2f")]
                           for n, r in rows.items() for l in [r["latency"][profile]]]))
    notes = findings(bench, export)
    if notes:
        out += ["", "## Findings", ""] + [f"- {s}" for s in notes]
    return "\n".join(out) + "\n"


def write_report(bench: dict, out_dir: Path, stem: str = "bench", export: Optional[dict] = None,
                 title: str = "Deployment benchmark", extra: Optional[dict] = None,
                 preface: str = "") -> dict[str, Path]:
    """Write <stem>.json, <stem>.md and <stem>.<chart>.png into `out_dir`; returns their paths.

    `extra` adds top-level keys to the JSON; `preface` is markdown placed under the title.
    """
    from .charts import write_charts

    out_dir = Path(out_dir)
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md"}
    write_json_atomic(paths["json"], {"benchmark": bench, "variants": variant_rows(bench, export),
                                      "findings": findings(bench, export), "export": export, **(extra or {})})
    write_text_atomic(paths["markdown"], markdown(bench, export, title, preface))
    paths.update(write_charts(variant_rows(bench, export), out_dir, stem))
    return paths
