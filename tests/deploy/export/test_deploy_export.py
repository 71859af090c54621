"""ONNX export verifies itself; sparse initializers round-trip and are used only past break-even."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from torch import nn

from deploy.measure.runtime import input_spec, logits
from deploy.measure.sizes import compressed_sizes, file_sizes
from deploy.errors import ExportFailed
from deploy.export.onnx_export import compare, export_onnx, parity, verify_parity
from deploy.export.sparse import break_even, same_initializers, to_dense_initializers, to_sparse_initializers
from incop_core.models.zoo import ModelConfig, build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(name="small-cnn", width=8), (1, 16, 16), 4).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(64, 1, 16, 16, generator=torch.Generator().manual_seed(0))


def test_export_is_opset_17_with_a_dynamic_batch_and_matches_pytorch(model, images, tmp_path):
    path = export_onnx(model, images[:2], tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain == ""] == [17]
    assert input_spec(path) == {"name": "input", "shape": ["batch", 1, 16, 16], "dtype": "float32"}
    figures = parity(path, model, images)
    assert figures["max_abs"] <= 1e-4 and figures["top1_agreement"] >= 0.999 and figures["images"] == 64
    for batch in (1, 3, 7):
        assert logits(path, images[:batch].numpy()).shape == (batch, 4)


def test_parity_failure_is_reported_with_its_figures():
    reference = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert compare(reference, reference) == {"images": 2, "max_abs": 0.0, "top1_agreement": 1.0}
    with pytest.raises(ExportFailed, match="disagrees with PyTorch"):
        verify_parity("m.onnx", reference, reference + np.float32(1e-3))
    close = np.array([[1.0, 1.0 - 2e-5], [0.0, 1.0]], dtype=np.float32)  # within 1e-4, first argmax flipped
    flipped = np.array([[1.0 - 2e-5, 1.0], [0.0, 1.0]], dtype=np.float32)
    with pytest.raises(ExportFailed, match="top-1 agreement 50.00 %"):
        verify_parity("m.onnx", close, flipped)


class _Unexportable(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cummax(x, dim=1).values  # no ONNX symbolic in opset 17


def test_an_export_failure_names_the_layer(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), _Unexportable()), nn.Flatten()).eval()
    with pytest.raises(ExportFailed, match=r"at layer 1\.1 \(_Unexportable\)"):
        export_onnx(model, torch.randn(2, 1, 8, 8), tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


def _matmul_model(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    nodes, last = [], "x"
    for i, name in enumerate(weights):
        nodes.append(helper.make_node("MatMul", [last, name], [f"y{i}"]))
        last = f"y{i}"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["b", 16])],
                              [helper.make_tensor_value_info(last, onnx.TensorProto.FLOAT, ["b", 16])],
                              [numpy_helper.from_array(w, n) for n, w in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _sparse_matrix(sparsity: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((16, 16)).astype(np.float32)
    w.reshape(-1)[rng.permutation(256)[: int(round(sparsity * 256))]] = 0
    return w


def test_sparse_initializers_only_past_break_even_and_round_trip(tmp_path):
    assert break_even() == pytest.approx(2 / 3)
    proto = _matmul_model({"mostly_zero": _sparse_matrix(0.9, 0), "half_zero": _sparse_matrix(0.5, 1)})
    sparse, report = to_sparse_initializers(proto)
    assert set(report["tensors"]) == {"mostly_zero"}
    assert report["tensors"]["mostly_zero"]["sparse_bytes"] < report["tensors"]["mostly_zero"]["dense_bytes"]
    assert [s.values.name for s in sparse.graph.sparse_initializer] == ["mostly_zero"]
    assert same_initializers(to_dense_initializers(sparse), proto)
    assert len(sparse.SerializeToString()) < len(proto.SerializeToString())
    dense_path, sparse_path = tmp_path / "dense.onnx", tmp_path / "sparse.onnx"
    dense_path.write_bytes(proto.SerializeToString())
    sparse_path.write_bytes(sparse.SerializeToString())
    x = np.random.default_rng(2).standard_normal((5, 16)).astype(np.float32)
    np.testing.assert_array_equal(logits(sparse_path, x), logits(dense_path, x))


def test_a_tensor_just_below_break_even_stays_dense():
    _, report = to_sparse_initializers(_matmul_model({"w": _sparse_matrix(0.6, 0)}))
    assert report["tensors"] == {} and report["bytes_saved"] == 0


def test_sizes_report_raw_gzip_and_zstd(tmp_path):
    data = bytes(10_000) + np.random.default_rng(0).bytes(1000)
    sizes = compressed_sizes(data)
    assert sizes["raw"] == 11_000 and sizes["gzip"] < 2000 and sizes["zstd"] < 2000
    (tmp_path / "f").write_bytes(data)
    assert file_sizes(tmp_path / "f") == sizes
