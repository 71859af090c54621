"""`incop predict` on a pulled model, and proof that pull/predict/rollback run without torch or prefect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deploy.edge.errors import RegistryError
from deploy.edge.predict import predict, preprocess
from deploy.edge.publish import publish
from deploy.edge.pull import pull
from tests.support.registry import assert_user_error, invoke, tiny_onnx

from tests.support.paths import ROOT
SPEC = {"mean": 0.5, "std": 0.25, "labels": [f"class-{i}" for i in range(10)]}


def _reference(model_path: Path, x: np.ndarray) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(model_path)).graph.initializer}
    hidden = np.maximum(x.reshape(1, -1) @ weights["w1"], 0)
    return (hidden @ weights["w2"] + weights["b"]).reshape(-1)


@pytest.fixture
def device(tmp_path):
    model = tiny_onnx(tmp_path / "m.onnx")
    publish(str(tmp_path / "reg"), "tiny", model, input_spec=SPEC)
    pull(str(tmp_path / "reg"), "tiny", tmp_path / "dev")
    pixels = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    from PIL import Image

    Image.fromarray(pixels, mode="L").save(tmp_path / "img.png")
    np.save(tmp_path / "img.npy", pixels)
    return {"dest": tmp_path / "dev", "model": model, "pixels": pixels, "png": tmp_path / "img.png",
            "npy": tmp_path / "img.npy"}


def test_predict_applies_the_manifests_preprocessing(device):
    x = ((device["pixels"] / 255.0 - 0.5) / 0.25).astype(np.float32)
    expected = _reference(device["model"], x)
    rows = predict(device["dest"], [device["png"], device["npy"]], top_k=3)
    assert [r["class"] for r in rows] == [int(expected.argmax())] * 2
    assert rows[0]["label"] == f"class-{int(expected.argmax())}" and len(rows[0]["top"]) == 3
    assert rows[0]["score"] == pytest.approx(rows[1]["score"], rel=1e-5)
    spec = {"channels": 1, "size": [8, 8], "mean": [0.5], "std": [0.25], "scale": 1 / 255}
    np.testing.assert_allclose(preprocess(device["npy"], spec)[0, 0], x, atol=1e-6)


def test_predict_errors_are_one_sentence(device, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert_user_error(invoke("predict", "--model", device["dest"], tmp_path / "bad.png"), "not a readable image")
    assert_user_error(invoke("predict", "--model", tmp_path / "empty", device["png"]), "incop pull")
    np.save(tmp_path / "wrong.npy", np.zeros((5, 5), np.uint8))
    assert_user_error(invoke("predict", "--model", device["dest"], tmp_path / "wrong.npy"), "resize")
    with pytest.raises(RegistryError, match="does not exist"):
        predict(device["dest"], [tmp_path / "missing.png"])


def test_an_nhwc_model_gets_an_nhwc_input(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.eye(64, 10, dtype=np.float32), "w")
    nodes = [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"])]
    graph = helper.make_graph(nodes, "nhwc", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8, 8, 1])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(tmp_path / "m.onnx"))
    spec = {"layout": "NHWC", "channels": 1, "size": [8, 8], "mean": [0.0], "std": [1.0]}
    publish(str(tmp_path / "reg"), "nhwc", tmp_path / "m.onnx", input_spec=spec)
    pull(str(tmp_path / "reg"), "nhwc", tmp_path / "dev")
    np.save(tmp_path / "img.npy", np.arange(64, dtype=np.uint8).reshape(8, 8))
    assert predict(tmp_path / "dev", [tmp_path / "img.npy"])[0]["class"] == 9  # pixel 9 is the brightest of 0..9


DEVICE_SCRIPT = """
import json, sys
sys.modules["torch"] = None      # any `import torch` now fails
sys.modules["prefect"] = None
from incop_core.cli.main import app
url, dest, image = sys.argv[1:4]
for args in (["pull", "--registry", url, "--name", "tiny", "--dest", dest, "--version", "1"],
             ["pull", "--registry", url, "--name", "tiny", "--dest", dest],
             ["predict", "--model", dest, image, "--json"],
             ["rollback", "--dest", dest]):
    app(args, standalone_mode=False)
loaded = sorted(m for m in ("torch", "prefect", "onnx", "onnxruntime", "PIL") if sys.modules.get(m) is not None)
print("LOADED " + json.dumps(loaded))
"""


def test_pull_predict_and_rollback_run_without_torch_or_prefect(server, tmp_path):
    for seed in (0, 1):
        publish(str(server.root_dir), "tiny", tiny_onnx(tmp_path / f"m{seed}.onnx", seed=seed), input_spec=SPEC)
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(tmp_path / "img.png")
    dest = tmp_path / "dev"
    done = subprocess.run([sys.executable, "-c", DEVICE_SCRIPT, server.url, str(dest), str(tmp_path / "img.png")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert json.loads(lines[-1].removeprefix("LOADED ")) == ["PIL", "onnxruntime"]
    assert "pulled tiny v2" in done.stdout and '"label": "class-' in done.stdout
    assert "rolled back tiny to v1" in done.stdout
