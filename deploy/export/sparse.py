"""ONNX sparse initializers, used only where a tensor is past the break-even sparsity.

A COO sparse initializer stores each non-zero as its value plus one int64 index (ONNX fixes the
index type), so a float32 tensor is smaller sparse than dense only when fewer than a third of its
entries are non-zero: the break-even sparsity is 1 - 4 / (4 + 8) = 2/3.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

INDEX_BYTES = 8  # int64 COO indices


def break_even(itemsize: int = 4) -> float:
    """Sparsity above which a sparse initializer is smaller than the dense tensor."""
    return 1.0 - itemsize / (itemsize + INDEX_BYTES)


def sparse_bytes(nonzero: int, itemsize: int) -> int:
    return nonzero * (itemsize + INDEX_BYTES)


def _to_sparse(array: np.ndarray, name: str) -> onnx.SparseTensorProto:
    flat = array.reshape(-1)
    index = np.flatnonzero(flat).astype(np.int64)
    values = numpy_helper.from_array(flat[index], name)
    return helper.make_sparse_tensor(values, numpy_helper.from_array(index, f"{name}_indices"), list(array.shape))


def to_sparse_initializers(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    """A copy of `proto` whose float initializers past the break-even sparsity are sparse, and a report."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    keep, converted = [], {}
    for init in out.graph.initializer:
        array = numpy_helper.to_array(init)
        nonzero = int(np.count_nonzero(array))
        is_float = array.dtype.kind == "f" and array.ndim >= 1
        if is_float and sparse_bytes(nonzero, array.itemsize) < array.nbytes:
            out.graph.sparse_initializer.append(_to_sparse(array, init.name))
            converted[init.name] = {"sparsity": 1.0 - nonzero / array.size, "dense_bytes": int(array.nbytes),
                                    "sparse_bytes": sparse_bytes(nonzero, array.itemsize)}
        else:
            keep.append(init)
    del out.graph.initializer[:]
    out.graph.initializer.extend(keep)
    saved = sum(c["dense_bytes"] - c["sparse_bytes"] for c in converted.values())
    return out, {"break_even_sparsity": break_even(), "tensors": converted, "bytes_saved": saved}


def to_dense_initializers(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The inverse: every sparse initializer back as a dense one (for round-trip checks and tools)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for sparse in out.graph.sparse_initializer:
        values = numpy_helper.to_array(sparse.values)
        dense = np.zeros(int(np.prod(sparse.dims)), dtype=values.dtype)
        dense[numpy_helper.to_array(sparse.indices).reshape(-1)] = values
        out.graph.initializer.append(numpy_helper.from_array(dense.reshape(tuple(sparse.dims)), sparse.values.name))
    del out.graph.sparse_initializer[:]
    return out


def same_initializers(a: onnx.ModelProto, b: onnx.ModelProto) -> bool:
    """True when both models hold the same dense initializers (names and exact values, any order)."""
    left = {i.name: numpy_helper.to_array(i) for i in a.graph.initializer}
    right = {i.name: numpy_helper.to_array(i) for i in b.graph.initializer}
    return left.keys() == right.keys() and all(np.array_equal(left[k], right[k]) for k in left)
