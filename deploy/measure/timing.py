"""Stage 6: onnxruntime CPU benchmarks. One timing loop returns raw samples; pure functions summarise them.

All models of a profile (and the peak GEMM) run interleaved in one loop, round-robin with a rotating
start, so background load on a shared machine hits every variant alike and ratios stay fair.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from ..export.filenames import BASELINE
from .flops import count_flops, count_parameters, matmul_model
from .profiles import Profile, get_profile, input_shape
from .runtime import PROVIDER, input_spec, read_model, session, session_options
from .sizes import file_sizes
from .sysinfo import system_info

PEAK = "peak-gemm"
PEAK_SIZE = 1024


def time_interleaved(runners: Mapping[str, Callable[[], object]], warmup: int, rounds: int,
                     per_round: int) -> dict[str, list[float]]:
    """The timing loop: warm every runner up, then `rounds` x `per_round` timed calls each, interleaved.

    Returns raw wall-clock seconds per call, per runner, in the order they were taken.
    """
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            run = runners[name]
            for _ in range(per_round):
                start = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - start)
    return samples


def summarise(samples: Sequence[float], batch: int) -> dict:
    """Latency percentiles (ms), spread and throughput of raw per-call samples in seconds (pure)."""
    if len(samples) == 0:
        raise ValueError("no samples to summarise")
    a = np.asarray(samples, dtype=float) * 1e3
    p10, q1, p50, q3, p90, p99 = np.percentile(a, [10, 25, 50, 75, 90, 99])
    return {"n": int(a.size), "batch": batch, "mean_ms": float(a.mean()), "std_ms": float(a.std()),
            "min_ms": float(a.min()), "p10_ms": float(p10), "p50_ms": float(p50), "p90_ms": float(p90),
            "p99_ms": float(p99), "max_ms": float(a.max()), "iqr_ms": float(q3 - q1),
            "spread": float((q3 - q1) / p50) if p50 > 0 else 0.0,
            "throughput_per_s": float(batch * 1e3 / a.mean())}


def efficiency(summary: dict, flops_per_sample: int, peak_gflops: float) -> dict:
    """Achieved GFLOP/s at the p50 latency and its share of the measured peak (pure)."""
    achieved = flops_per_sample * summary["batch"] / (summary["p50_ms"] * 1e-3) / 1e9
    return {"gflops": achieved, "peak_share": achieved / peak_gflops if peak_gflops else None}


def speedups(summaries: Mapping[str, dict], baseline: str) -> dict[str, float]:
    """p50 latency of the baseline divided by each variant's (pure): above 1 is faster."""
    base = summaries[baseline]["p50_ms"]
    return {name: base / s["p50_ms"] for name, s in summaries.items()}


def describe_model(path: Path) -> dict:
    """Static facts of an ONNX file: input, FLOPs and parameters per sample, file sizes."""
    proto = read_model(path)
    flops = count_flops(proto)
    return {"path": str(path), "input": input_spec(path), "flops": flops, "macs": flops // 2, **count_parameters(proto),
            "sparse_initializers": len(proto.graph.sparse_initializer), "sizes": file_sizes(path)}


def _runner(sess, feed: dict) -> Callable[[], object]:
    return lambda: sess.run(None, feed)


def _peak_runner(profile: Profile, size: int) -> tuple[Callable[[], object], int]:
    import onnxruntime as ort

    data, flops = matmul_model(size)
    options = session_options(profile.threads, profile.optimization, profile.denormal_as_zero)
    sess = ort.InferenceSession(data, options, providers=[PROVIDER])
    feed = {"a": np.random.default_rng(1).standard_normal((size, size)).astype(np.float32)}
    return _runner(sess, feed), flops


def bench_profile(models: Mapping[str, dict], profile: Profile, baseline: Optional[str], warmup: int,
                  rounds: Optional[int], per_round: Optional[int], peak_size: int = PEAK_SIZE) -> dict:
    """Time every model of `models` (name -> describe_model) and the peak GEMM under one profile."""
    runners, rng = {}, np.random.default_rng(0)
    for name, info in models.items():
        shape = input_shape(info["input"], profile, Path(info["path"]))
        sess = session(Path(info["path"]), profile.threads, profile.optimization)
        runners[name] = _runner(sess, {info["input"]["name"]: rng.standard_normal(shape).astype(np.float32)})
    runners[PEAK], peak_flops = _peak_runner(profile, peak_size)
    raw = time_interleaved(runners, warmup, rounds or profile.rounds, per_round or profile.per_round)
    summaries = {name: summarise(raw[name], profile.batch) for name in models}
    peak = summarise(raw[PEAK], 1)
    peak_gflops = peak_flops / (peak["p50_ms"] * 1e-3) / 1e9
    for name, summary in summaries.items():
        summary.update(efficiency(summary, models[name]["flops"], peak_gflops))
    ratios = speedups(summaries, baseline) if baseline in summaries else {}
    for name, ratio in ratios.items():
        summaries[name]["speedup_p50"] = ratio
    return {"profile": profile.as_dict(), "peak": {**peak, "gflops": peak_gflops, "matmul_n": peak_size},
            "models": summaries, "samples_s": raw}


def benchmark(models: Mapping[str, Path], profiles: Sequence[str] = ("edge-1t",), baseline: Optional[str] = None,
              warmup: int = 5, rounds: Optional[int] = None, per_round: Optional[int] = None,
              peak_size: int = PEAK_SIZE) -> dict:
    """Benchmark ONNX files (variant name -> path) under each profile, side by side in one process.

    The baseline (default: "dense" when given, else the first model) is the denominator of every speed-up.
    """
    chosen = [get_profile(name) for name in profiles]  # unknown names fail before any work
    described = {name: describe_model(Path(path)) for name, path in models.items()}
    baseline = baseline or (BASELINE if BASELINE in models else next(iter(models)))
    for profile in chosen:
        for name, info in described.items():
            input_shape(info["input"], profile, Path(info["path"]))
    results = {p.name: bench_profile(described, p, baseline, warmup, rounds, per_round, peak_size) for p in chosen}
    return {"system": system_info(PROVIDER), "baseline": baseline, "models": described, "profiles": results,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
