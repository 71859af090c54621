"""INT8: onnxruntime static quantisation (pre-processing, QDQ, per-channel weights), calibrated on training images.

Weights use 7 of their 8 bits (reduce_range): x86 CPUs without VNNI multiply uint8 activations by int8
weights with VPMADDUBSW, whose 16-bit sums saturate at full range. Measured on the compacted ResNet-18
of bench/deploy_resnet18.py (AVX2, no VNNI): full range kept 88 % top-1 agreement with the float model
(-3.6 pp accuracy), reduce_range 96 % (+1.3 pp) at the same speed; int8 activations (S8S8) lost the
speed-up.

INT8 is not always faster. On the compacted small CNN (about 30 us per image on one thread) it is
~0.7x of the float model: each QLinearConv costs ~10 us however few its channels (NHWC transposes,
requantisation, im2col packing), where onnxruntime's float Conv runs the NCHWc kernels in a few us,
and QuantizeLinear / DequantizeLinear add ~5 us at the edges. Measured alternatives (QOperator instead
of QDQ, per-tensor weights, full range, graph optimisation basic / extended) were no faster, and
per-tensor QOperator was 2x slower. What does pay on such a model is quantising only the fully connected
layers (`int8-linear`: INT8 Gemm/MatMul, float convolutions): the QGemm saves more than its Q/DQ cost and
the Linear weights are most of the file. The pipeline exports both and publishes an INT8 variant only
where it is faster than its float source on the target profile (deploy/decisions/summary.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from incop_core.foundations.fileio import write_bytes_atomic

from ..measure.runtime import read_model
from ..errors import ExportFailed
from .onnx_export import check

CALIBRATION_BATCH = 32


class _Batches:
    """onnxruntime's CalibrationDataReader protocol over an array of images."""

    def __init__(self, name: str, images: np.ndarray) -> None:
        self.name = name
        self.chunks = iter([images[s:s + CALIBRATION_BATCH] for s in range(0, len(images), CALIBRATION_BATCH)])

    def get_next(self) -> dict | None:
        chunk = next(self.chunks, None)
        return None if chunk is None else {self.name: np.ascontiguousarray(chunk, dtype=np.float32)}


def quantize_int8(source: Path, target: Path, calibration: np.ndarray,
                  op_types: Optional[Sequence[str]] = None) -> Path:
    """Write an INT8 QDQ copy of `source` (uint8 activations, 7-bit int8 per-channel weights, MinMax calibration);
    `op_types` limits quantisation to those operators (the rest stay float)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = read_model(source).graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=False)
            quantize_static(str(prepared), str(quantized), _Batches(name, calibration), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, reduce_range=True,
                            op_types_to_quantize=list(op_types) if op_types else None)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise ExportFailed(f"INT8 quantisation of {Path(source).name} failed ({first}); "
                               f"use `incop export --no-int8` to skip INT8") from None
        check(read_model(quantized), f"the INT8 model {Path(target).name}")
        write_bytes_atomic(Path(target), quantized.read_bytes())
    return Path(target)
