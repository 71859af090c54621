"""FLOPs of an ONNX model per input sample (dense: what the CPU kernels execute), and a peak GEMM model."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from ..export.sparse import to_dense_initializers


def _shapes(proto: onnx.ModelProto) -> dict[str, list[int]]:
    """Every tensor's shape, with symbolic (batch) dimensions read as 1."""
    graph = shape_inference.infer_shapes(proto).graph
    shapes = {i.name: list(i.dims) for i in graph.initializer}
    for info in (*graph.input, *graph.value_info, *graph.output):
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
    return shapes


def _node_macs(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> int:
    if node.op_type == "Conv":
        weight, out = shapes.get(node.input[1]), shapes.get(node.output[0])
        return int(np.prod(out[1:]) * np.prod(weight[1:])) if weight and out else 0
    if node.op_type in ("MatMul", "Gemm"):
        a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
        if not a or not b:
            return 0
        trans_b = any(att.name == "transB" and att.i for att in node.attribute)
        n = b[-2] if trans_b else b[-1]
        return int(np.prod(a)) * n
    return 0


def count_flops(proto: onnx.ModelProto) -> int:
    """2 x multiply-accumulates of every Conv, MatMul and Gemm, per sample (zeros are counted: kernels run them)."""
    if proto.graph.sparse_initializer:
        proto = to_dense_initializers(proto)
    shapes = _shapes(proto)
    return 2 * sum(_node_macs(node, shapes) for node in proto.graph.node)


def count_parameters(proto: onnx.ModelProto) -> dict:
    """Stored parameters, and how many of them are non-zero."""
    proto = to_dense_initializers(proto) if proto.graph.sparse_initializer else proto
    arrays = [numpy_helper.to_array(i) for i in proto.graph.initializer]
    arrays = [a for a in arrays if a.ndim >= 1]
    return {"parameters": int(sum(a.size for a in arrays)), "nonzero": int(sum(np.count_nonzero(a) for a in arrays))}


def matmul_model(n: int, seed: int = 0) -> tuple[bytes, int]:
    """A float32 (n x n) @ (n x n) MatMul model and its FLOPs: the machine's attainable GEMM peak."""
    weight = np.random.default_rng(seed).standard_normal((n, n)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "peak_gemm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
                              initializer=[numpy_helper.from_array(weight, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString(), 2 * n ** 3
