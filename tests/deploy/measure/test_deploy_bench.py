"""Benchmark: the timing loop's interleaving, the pure summaries, FLOPs, and the report's plain sentences."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from deploy.measure.flops import count_flops, count_parameters, matmul_model
from deploy.measure.report import NIL_GAIN, findings, markdown, write_report
from deploy.measure.timing import benchmark, efficiency, speedups, summarise, time_interleaved
from deploy.export.onnx_export import export_onnx
from incop_core.models.zoo import ModelConfig, build_model


def test_summary_of_known_samples():
    samples = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    s = summarise(samples, batch=4)
    assert s["n"] == 100 and s["batch"] == 4
    assert s["p50_ms"] == pytest.approx(50.5)
    assert s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert s["min_ms"] == pytest.approx(1.0) and s["max_ms"] == pytest.approx(100.0)
    assert s["mean_ms"] == pytest.approx(50.5)
    assert s["iqr_ms"] == pytest.approx(49.5) and s["spread"] == pytest.approx(49.5 / 50.5)
    assert s["throughput_per_s"] == pytest.approx(4 / 0.0505)


def test_summary_of_constant_samples_and_of_none():
    s = summarise([0.002] * 7, batch=1)
    assert s["p50_ms"] == s["p99_ms"] == pytest.approx(2.0) and s["spread"] == 0.0 and s["std_ms"] == 0.0
    with pytest.raises(ValueError):
        summarise([], batch=1)


def test_ratios_are_pure_functions_of_the_summaries():
    summaries = {"dense": {"p50_ms": 40.0, "batch": 1}, "compacted": {"p50_ms": 10.0, "batch": 1}}
    assert speedups(summaries, "dense") == {"dense": 1.0, "compacted": 4.0}
    assert efficiency({"p50_ms": 10.0, "batch": 2}, flops_per_sample=1e9, peak_gflops=400.0) == {
        "gflops": pytest.approx(200.0), "peak_share": pytest.approx(0.5)}


def test_timing_loop_warms_up_then_interleaves_with_a_rotating_start():
    calls = []
    runners = {name: (lambda n=name: calls.append(n)) for name in ("a", "b", "c")}
    samples = time_interleaved(runners, warmup=2, rounds=3, per_round=2)
    assert calls[:6] == ["a", "a", "b", "b", "c", "c"]  # warm-up, untimed
    timed = calls[6:]
    assert timed == ["a", "a", "b", "b", "c", "c", "b", "b", "c", "c", "a", "a", "c", "c", "a", "a", "b", "b"]
    assert {k: len(v) for k, v in samples.items()} == {"a": 6, "b": 6, "c": 6}
    assert all(t >= 0 for v in samples.values() for t in v)


def _conv_gemm_model() -> onnx.ModelProto:
    """Conv 1->4 (3x3, pad 1) on 8x8, flatten, Gemm 256->10: known MACs 4*8*8*9 + 256*10."""
    w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")
    g = numpy_helper.from_array(np.ones((10, 256), np.float32), "g")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["c"], ["f"]), helper.make_node("Gemm", ["f", "g"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 1, 8, 8])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 10])], [w, g])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_flops_and_parameters_of_a_known_graph():
    proto = _conv_gemm_model()
    assert count_flops(proto) == 2 * (4 * 8 * 8 * 9 + 256 * 10)
    assert count_parameters(proto) == {"parameters": 36 + 2560, "nonzero": 36 + 2560}
    _, flops = matmul_model(64)
    assert flops == 2 * 64 ** 3


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    wide = build_model(ModelConfig(name="small-cnn", width=8), (1, 16, 16), 4)
    narrow = build_model(ModelConfig(name="small-cnn", width=4), (1, 16, 16), 4)
    example = torch.randn(2, 1, 16, 16)
    return {"dense": export_onnx(wide, example, folder / "dense.onnx"),
            "compacted": export_onnx(narrow, example, folder / "compacted.onnx")}


def test_benchmark_runs_every_profile_side_by_side(tiny_models, tmp_path):
    result = benchmark(tiny_models, ("edge-1t", "throughput"), warmup=1, rounds=2, per_round=2, peak_size=64)
    assert result["baseline"] == "dense"
    assert {"cpu", "simd_flags", "onnxruntime", "provider"} <= set(result["system"])
    for name, run in result["profiles"].items():
        assert set(run["models"]) == {"dense", "compacted"}
        assert all(len(v) == 4 for v in run["samples_s"].values())
        assert run["peak"]["gflops"] > 0
        assert run["models"]["dense"]["speedup_p50"] == 1.0
        assert run["models"]["compacted"]["gflops"] > 0
    assert result["profiles"]["throughput"]["models"]["dense"]["batch"] == 32
    paths = write_report(result, tmp_path, "r")
    assert {p.name for p in tmp_path.iterdir()} == {"r.json", "r.md", "r.size.png", "r.latency.png"}
    assert json.loads(paths["json"].read_text())["benchmark"]["baseline"] == "dense"


def _fake_bench(ratio: float) -> dict:
    def lat(p50):
        return {"p50_ms": p50, "p90_ms": p50, "p99_ms": p50, "spread": 0.0, "throughput_per_s": 1e3 / p50,
                "speedup_p50": 39.1 / p50, "gflops": 1.0, "peak_share": 0.1, "batch": 1}

    sizes = {"raw": 100, "gzip": 90, "zstd": 80}
    model = {"sizes": sizes, "flops": 10, "parameters": 10, "nonzero": 1}
    return {"baseline": "dense", "created": "now", "models": {"dense": model, "pruned": model},
            "system": {"cpu": "cpu", "cores": 2, "simd_flags": ["avx2"], "onnxruntime": "1", "provider": "CPU"},
            "profiles": {"edge-1t": {"profile": {"description": "d", "optimization": "all", "denormal_as_zero": True},
                                     "peak": {"gflops": 10.0, "matmul_n": 64},
                                     "models": {"dense": lat(39.1), "pruned": lat(39.1 / ratio)}}}}


def test_a_nil_latency_gain_is_said_in_plain_words():
    export = {"sparsity": {"sparsity": 0.9}, "artifacts": {"dense": {"accuracy": 0.9}, "pruned": {"accuracy": 0.9}}}
    sentences = findings(_fake_bench(1.0), export)
    assert len(sentences) == 1
    assert "pruned has no latency gain over dense (p50 edge-1t 39.1 ms vs 39.1 ms (x1.00))" in sentences[0]
    assert "90.0 % zero weights are nominal" in sentences[0]
    assert sentences[0] in markdown(_fake_bench(1.0), export)
    assert findings(_fake_bench(NIL_GAIN + 0.5), export) == []
