"""`prune.round_to: auto` (docs/algorithms.md §2.2.1): kept widths that land where onnxruntime's CPU kernels are fast.

For each layer (layer-filter) or coupled group (group), the schedule's kept count k has up to 8 candidate widths
k-7..k (the range `round_to: 8` picks from). Each candidate is priced by timing, once per machine, the convolutions
the width changes at their real input size: the layer itself, or every writer (out = w; a depthwise one in = out =
w) and reader (in = w) of the group, one intra-op thread (the `edge-1t` profile). The widest candidate within 5 %
of the cheapest wins, so a width is given up only for a measured gain, never for noise. Timings are cached in a JSON
file beside the run directories, so a resumed run chooses the same widths.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from incop_core.foundations.fileio import read_json, write_json_atomic
from incop_core.pruning.masks import Mask, alive_filters, prunable_weights

CANDIDATES = 8
TIE = 1.05  # within 5 % of the cheapest counts as equally fast
THREADS = 1


@dataclass(frozen=True)
class ConvShape:
    """One Conv2d (a Linear is a 1x1 conv on a 1x1 map) at its input size."""

    inputs: int
    outputs: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int
    height: int
    width: int

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.inputs == self.outputs

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def layer_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, ConvShape]:
    """Weight name -> the shape of its layer at its input size (one forward pass of `example[:1]`)."""
    names = {m: f"{n}.weight" for n, m in model.named_modules()}
    weights, found = prunable_weights(model), {}

    def hook(module, inputs):
        x = inputs[0]
        if isinstance(module, nn.Conv2d):
            found[names[module]] = ConvShape(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                                             module.padding if isinstance(module.padding, tuple) else (0, 0),
                                             module.groups, int(x.shape[-2]), int(x.shape[-1]))
        else:
            found[names[module]] = ConvShape(module.in_features, module.out_features, (1, 1), (1, 1), (0, 0), 1, 1, 1)

    hooks = [m.register_forward_pre_hook(hook) for m in model.modules() if names.get(m) in weights]
    was = model.training
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        model.train(was)
        for handle in hooks:
            handle.remove()
    return found


def conv_latency_ms(shape: ConvShape, runs: int = 30) -> float:
    """Median onnxruntime latency of one convolution of `shape` (batch 1, one intra-op thread)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((shape.outputs, shape.inputs // shape.groups, *shape.kernel)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=list(shape.kernel), strides=list(shape.stride),
                            pads=[*shape.padding, *shape.padding], group=shape.groups)
    graph = helper.make_graph([node], "width", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                               [1, shape.inputs, shape.height,
                                                                                shape.width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(weight, "w")])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = THREADS, 1, 3
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"x": rng.standard_normal((1, shape.inputs, shape.height, shape.width)).astype(np.float32)}
    for _ in range(5):
        sess.run(None, feed)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feed)
        samples.append(time.perf_counter() - start)
    return float(np.median(samples) * 1e3)


class LatencyTable:
    """Convolution latencies measured once and kept in a JSON file (a damaged file is measured again)."""

    def __init__(self, path: Optional[Path], measure: Callable[[ConvShape], float] = conv_latency_ms) -> None:
        self.path, self.measure = path, measure
        try:
            self.known: dict[str, float] = dict(read_json(path)) if path and path.is_file() else {}
        except Exception:
            self.known = {}

    def __call__(self, shape: ConvShape) -> float:
        key = shape.key()
        if key not in self.known:
            self.known[key] = self.measure(shape)
            if self.path:
                write_json_atomic(self.path, self.known)
        return self.known[key]


def width_cost(width: int, writers: Sequence[ConvShape], readers: Sequence[ConvShape], table: LatencyTable) -> float:
    """The latency of every convolution a group's width changes, at that width."""
    total = 0.0
    for shape in writers:
        total += table(replace(shape, inputs=width, outputs=width, groups=width) if shape.depthwise else
                       replace(shape, outputs=width))
    for shape in readers:
        total += table(replace(shape, inputs=width))
    return total


def fastest_kept(kept: int, alive: int, writers: Sequence[ConvShape], readers: Sequence[ConvShape],
                 table: LatencyTable) -> int:
    """The widest of k-7..k whose cost is within 5 % of the cheapest; a group at or under 8 keeps what it has."""
    if alive <= CANDIDATES:
        return alive
    candidates = range(max(1, kept - CANDIDATES + 1), kept + 1)
    costs = {w: width_cost(w, writers, readers, table) for w in candidates}
    cheapest = min(costs.values())
    return max(w for w, c in costs.items() if c <= cheapest * TIE)


@dataclass
class AutoWidths:
    """`round_to: auto` for one model: the counts a schedule asked for, moved onto fast widths."""

    shapes: Mapping[str, ConvShape]
    members: Mapping[str, tuple[list[str], list[str]]]  # group key -> (writer names, reader names)
    table: LatencyTable

    def counts(self, counts: Mapping[str, int], mask: Mask) -> dict[str, int]:
        moved = {}
        for group, count in counts.items():
            if group not in self.members:
                moved[group] = count
                continue
            alive = int(alive_filters(mask.tensors[group]).sum())
            writers, readers = self.members[group]
            kept = fastest_kept(alive - min(max(count, 0), alive), alive, [self.shapes[n] for n in writers],
                                [self.shapes[n] for n in readers], self.table)
            moved[group] = alive - kept
        return moved


def auto_widths(model: nn.Module, example: torch.Tensor, groups: Optional[Sequence] = None,
                cache: Optional[Path] = None) -> AutoWidths:
    """Per layer (all but the classifier) or per channel group: what its width changes, priced on this machine."""
    shapes = layer_shapes(model, example)
    if groups is not None:
        members = {g.root: (list(g.writers), list(g.readers)) for g in groups}
    else:
        members = {name: ([name], []) for name in list(prunable_weights(model))[:-1]}
    return AutoWidths(shapes, members, LatencyTable(cache))
