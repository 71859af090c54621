"""Issue #20: publish refuses what a device cannot run (memory bombs, unusable outputs, bad input specs), and
`incop predict` refuses the same on an entry that skipped those checks, each in one sentence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.bad_inputs import expect_user_error, run_incop
from deploy.edge.errors import RegistryError
from deploy.edge.publish import publish
from deploy.edge.pull import pull
from tests.support.registry import tiny_onnx

BOMB = [1, 4096, 4096, 32]  # 2 GiB of float32 from a model of a few KB


def graph_onnx(path, nodes, inits=(), outputs=(("out", 1, [1, 10]),), input_shape=(1, 1, 8, 8)):
    """A model on `input` (float32 `input_shape`) with `nodes`, initializers {name: array} and (name, type, shape)
    outputs; the nodes may use "logits", 1x10 scores computed from the input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    head = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"])]
    weight = np.linspace(-1, 1, 10, dtype=np.float32).reshape(1, 10)
    tensors = [numpy_helper.from_array(np.asarray(v), k) for k, v in {"w": weight, **dict(inits)}.items()]
    graph = helper.make_graph(head + list(nodes), "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))],
                              [helper.make_tensor_value_info(*o) for o in outputs], tensors)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def _node(op, inputs, output, **attrs):
    from onnx import helper

    return helper.make_node(op, inputs, [output], **attrs)


def _summed_into_logits(big):
    """Nodes that reduce tensor `big` to one number and add it to the logits (so `big` must be computed)."""
    return [_node("ReduceSum", [big], "total", keepdims=0), _node("Add", ["logits", "total"], "out")]


def _filled():
    from onnx import TensorProto, helper

    return {"value": helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])}


def _bomb(path, kind):
    target = np.array(BOMB, np.int64)
    one = np.ones((1, 1, 1, 1), np.float32)
    nodes = {"ConstantOfShape": ([_node("ConstantOfShape", ["target"], "big", **_filled())], {"target": target}),
             "Constant node": ([_node("Constant", [], "target", value=_tensor(target)),
                                _node("ConstantOfShape", ["target"], "big", **_filled())], {}),
             "Expand": ([_node("Expand", ["one", "target"], "big")], {"one": one, "target": target}),
             "Tile": ([_node("Tile", ["one", "target"], "big")], {"one": one, "target": target}),
             "Resize": ([_node("Resize", ["input", "", "scales"], "big")],
                        {"scales": np.array([1, 1, 4096, 4096], np.float32)}),
             "runtime": (_runtime_target(), {"target": target.astype(np.float32), "zero": np.zeros(1, np.float32)})}
    built, inits = nodes[kind]
    return graph_onnx(path, built + _summed_into_logits("big"), inits)


def _runtime_target():
    """ConstantOfShape of a shape computed from the input's values: no static shape inference can size it."""
    return [_node("ReduceMax", ["input"], "peak", keepdims=0), _node("Mul", ["peak", "zero"], "nothing"),
            _node("Add", ["target", "nothing"], "shape_f"), _node("Cast", ["shape_f"], "shape", to=7),
            _node("ConstantOfShape", ["shape"], "big", **_filled())]


def _tensor(array):
    from onnx import numpy_helper

    return numpy_helper.from_array(array)


def _publish(model, *spec):
    registry = model.parent / "reg"
    given = ["--input-spec", *spec] if spec else []
    return run_incop("publish", model, "--registry", registry, "--name", "x", *given), registry


@pytest.mark.parametrize("kind", ["ConstantOfShape", "Constant node", "Expand", "Tile", "Resize"])
def test_a_memory_bomb_is_refused_before_it_runs(tmp_path, kind):
    model = _bomb(tmp_path / "bomb.onnx", kind)
    assert model.stat().st_size < 32_000
    outcome, registry = _publish(model)
    expect_user_error(outcome, "GiB", "export")
    assert not registry.exists()


def test_constant_targets_still_bound_memory_when_shape_inference_fails(tmp_path, monkeypatch):
    import onnx

    def fail(*args, **kwargs):
        raise onnx.shape_inference.InferenceError("unsupported graph")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", fail)
    for kind in ("ConstantOfShape", "Constant node", "Expand", "Tile"):
        with pytest.raises(RegistryError, match="computes 2.0 GiB of tensors"):
            publish(str(tmp_path / "reg"), "x", _bomb(tmp_path / f"{kind}.onnx", kind))
    assert not (tmp_path / "reg").exists()


def test_a_bomb_sized_only_at_run_time_is_stopped_by_the_memory_cap(tmp_path):
    outcome, registry = _publish(_bomb(tmp_path / "bomb.onnx", "runtime"))
    expect_user_error(outcome, "memory", "GiB", "export")
    assert not registry.exists()


def test_a_huge_declared_input_is_refused(tmp_path):
    outcome, registry = _publish(graph_onnx(tmp_path / "big.onnx", [_node("Identity", ["logits"], "out")],
                                            input_shape=(1, 1, 60000, 60000)))
    expect_user_error(outcome, "1x1x60000x60000", "MiB", "export")
    assert not registry.exists()


def _outputs(path, kind):
    """Models whose first output a classifier cannot use."""
    from onnx import TensorProto

    if kind == "0-width":
        nodes = [_node("Slice", ["logits", "zero", "zero", "one"], "out")]
        return graph_onnx(path, nodes, {"zero": np.zeros(1, np.int64), "one": np.ones(1, np.int64)},
                          [("out", TensorProto.FLOAT, [1, 0])])
    if kind == "NaN":
        return graph_onnx(path, [_node("Sqrt", ["minus"], "nan"), _node("Add", ["logits", "nan"], "out")],
                          {"minus": -np.ones(1, np.float32)})
    if kind == "int64 first":
        return graph_onnx(path, [_node("Shape", ["input"], "out"), _node("Identity", ["logits"], "scores")], {},
                          [("out", TensorProto.INT64, [4]), ("scores", TensorProto.FLOAT, [1, 10])])
    return graph_onnx(path, [_node("Reshape", ["logits", "flat_shape"], "out")], {"flat_shape": np.array([1, 1, 10])},
                      [("out", TensorProto.FLOAT, [1, 1, 10])])


@pytest.mark.parametrize("kind, says", [("0-width", "0 scores"), ("NaN", "NaN"), ("int64 first", "int64"),
                                        ("rank 3", "[1, 1, 10]")])
def test_a_model_whose_output_is_not_class_scores_is_refused(tmp_path, kind, says):
    outcome, registry = _publish(_outputs(tmp_path / "m.onnx", kind))
    expect_user_error(outcome, says, "export")
    assert not registry.exists()


LABELS = [f"c{i}" for i in range(10)]


@pytest.mark.parametrize("classes, spec, says", [
    (1000, {"labels": LABELS}, "1000 scores for 10 labels"), (10, {"labels": ["a", "b", "c"]}, "10 scores for 3"),
    (10, {"labels": 5}, "labels 5"), (10, {"labels": {"a": 1}}, "labels {'a': 1}"),
    (10, {"labels": [1] * 10}, "labels"), (10, {"scale": 0}, "scale 0"), (10, {"scale": "x"}, "scale 'x'"),
    (10, {"mean": 1e308}, "mean"), (10, {"std": 1e-30}, "std")])
def test_an_input_spec_a_device_cannot_use_is_refused(tmp_path, classes, spec, says):
    model = tiny_onnx(tmp_path / "m.onnx", classes=classes)
    outcome, registry = _publish(model, json.dumps(spec))
    expect_user_error(outcome, says, "input-spec" if "scores" not in says else "labels")
    assert not registry.exists()


# predict on entries that skipped publish's checks (a pulled directory edited in place)


@pytest.fixture
def device(tmp_path):
    publish(str(tmp_path / "reg"), "tiny", tiny_onnx(tmp_path / "m.onnx"), input_spec={"labels": LABELS})
    pull(str(tmp_path / "reg"), "tiny", tmp_path / "dev")
    np.save(tmp_path / "img.npy", np.full((8, 8), 128, np.uint8))
    return tmp_path / "dev"


def _edit_spec(device, **fields):
    path = device / "versions/1/manifest.json"
    manifest = json.loads(path.read_text())
    manifest["input_spec"].update(fields)
    path.write_text(json.dumps(manifest))


def test_predict_caps_the_memory_of_a_bomb(device, tmp_path):
    _bomb(device / "versions/1/model.onnx", "ConstantOfShape")
    outcome = run_incop("predict", "--model", device, tmp_path / "img.npy")
    expect_user_error(outcome, "memory", "GiB", "republish")


def test_predict_refuses_a_huge_declared_input_before_building_it(device, tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(tmp_path / "img.png")
    _edit_spec(device, size=[9000, 9000], shape=[1, 1, 9000, 9000])
    expect_user_error(run_incop("predict", "--model", device, tmp_path / "img.png"), "MiB", "republish")


@pytest.mark.parametrize("kind, says", [("NaN", "NaN"), ("int64 first", "int64"), ("0-width", "0 scores")])
def test_predict_checks_the_models_output(device, tmp_path, kind, says):
    _outputs(device / "versions/1/model.onnx", kind)
    expect_user_error(run_incop("predict", "--model", device, tmp_path / "img.npy"), says, "republish")


def test_predict_refuses_labels_that_do_not_match_the_scores(device, tmp_path):
    _edit_spec(device, labels=["a", "b", "c"])
    expect_user_error(run_incop("predict", "--model", device, tmp_path / "img.npy"), "10 scores for 3 labels")


def test_an_npy_header_claiming_1e15_elements_is_refused_before_loading(device, tmp_path):
    header = {"descr": "<f4", "fortran_order": False, "shape": (1000, 1000, 1000, 1000, 1000)}
    with open(tmp_path / "huge.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(b"\0" * 64)
    outcome = run_incop("predict", "--model", device, tmp_path / "huge.npy")
    expect_user_error(outcome, "huge.npy", "(1000, 1000, 1000, 1000, 1000)", "resize")
