"""`incop export` and `incop bench` bad inputs: one sentence naming the fix, exit status 2, no traceback."""

from __future__ import annotations

import io
import json
import re
import warnings

import onnx
import pytest
import torch
from onnx import helper
from typer.testing import CliRunner

from tests.support.bad_inputs import Outcome, expect_user_error

from deploy.measure.flops import matmul_model
from deploy.export.onnx_export import export_onnx
from incop_core.cli.main import app
from incop_core.imp.config import validate
from incop_core.models.zoo import ModelConfig, build_model

FIX_WORDS = re.compile(r"\b(choose|fix|pass|use|check|remove|list|wait|delete|resume)\b", re.IGNORECASE)


def assert_user_error(*args, mentions=()) -> str:
    """Run the CLI in-process; expect_user_error over its output (stdout and stderr together), this module's fix
    words."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    return expect_user_error(Outcome.of(args, result.exit_code, "", result.output), *map(str, mentions),
                             fix_words=FIX_WORDS)


@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="small-cnn", width=4), (1, 8, 8), 3).eval()
    return export_onnx(model, torch.randn(2, 1, 8, 8), tmp_path_factory.mktemp("m") / "dense.onnx")


@pytest.fixture(scope="module")
def fixed_batch_model(tmp_path_factory):
    """An ONNX file exported without a dynamic batch axis (batch fixed at 1)."""
    model = build_model(ModelConfig(name="small-cnn", width=4), (1, 8, 8), 3).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 1, 8, 8),), buffer, dynamo=False, opset_version=17)
    path = tmp_path_factory.mktemp("m") / "fixed.onnx"
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize("content", [b"", b"hello, I am not a model\n", bytes(range(256)) * 4],
                         ids=["empty", "text", "binary-noise"])
def test_a_file_that_is_not_onnx(tmp_path, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    assert_user_error("bench", path, mentions=["not a readable ONNX model", str(path)])


def test_a_truncated_onnx_file(tmp_path, good_model):
    path = tmp_path / "cut.onnx"
    path.write_bytes(good_model.read_bytes()[: len(good_model.read_bytes()) // 2])
    assert_user_error("bench", path, mentions=["cut.onnx"])


def test_an_onnx_file_onnxruntime_cannot_load(tmp_path):
    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])])
    path = tmp_path / "custom.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                             helper.make_opsetid("com.example", 1)],
                                       ir_version=8).SerializeToString())
    assert_user_error("bench", path, mentions=["onnxruntime cannot load custom.onnx"])


def test_a_missing_model_file(tmp_path):
    assert_user_error("bench", tmp_path / "nope.onnx", mentions=["does not exist"])


def test_an_unknown_profile(good_model):
    assert_user_error("bench", good_model, "--profile", "phone", mentions=["'phone'", "edge-1t", "throughput"])


def test_a_fixed_batch_model_under_a_batched_profile(fixed_batch_model):
    assert_user_error("bench", fixed_batch_model, "--profile", "throughput",
                      mentions=["fixed batch size of 1", "batch 32", "dynamic batch axis"])


def test_a_model_whose_input_is_not_an_image(tmp_path):
    path = tmp_path / "gemm.onnx"
    path.write_bytes(matmul_model(8)[0])
    assert_user_error("bench", path, mentions=["float32 NCHW", "[8, 8]"])


def test_an_unknown_baseline(good_model):
    assert_user_error("bench", good_model, "--baseline", "fp64", mentions=["'fp64'", "dense"])


def _run_dir(tmp_path, state: str):
    run = tmp_path / "runs" / "abc123"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(validate({}).model_dump(mode="json")))
    (run / "status.json").write_text(json.dumps({"state": state, "iterations_done": 1, "iterations_total": 5}))
    return run


@pytest.mark.parametrize("state", ["running", "failed", "new"])
def test_export_of_a_run_that_has_not_finished(tmp_path, state):
    run = _run_dir(tmp_path, state)
    assert_user_error("export", "abc", "--runs-dir", run.parent, mentions=["has not finished", f"state {state}"])
    assert not (run / "export").exists()


def test_export_of_something_that_is_not_a_run(tmp_path):
    assert_user_error("export", "zzz", "--runs-dir", tmp_path, mentions=["'zzz'", "incop runs"])
