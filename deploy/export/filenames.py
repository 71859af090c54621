"""Every file name that export and benchmarking write, in one place (the run gets an `export/` folder)."""

from __future__ import annotations

from pathlib import Path

EXPORT_DIR = "export"
MANIFEST = "export.json"            # written last: its presence means the export is complete
SPARSITY = "sparsity.json"          # validate_sparsity's per-layer report
COMPACTED_WEIGHTS = "compacted.pt"  # state dict of the compacted model (loads with weights_only=True)
COMPACTED_SPEC = "compacted.json"   # architecture spec: channels per layer, so no pickle is needed

# Variant name -> ONNX file name. Order is the order of every table and chart.
ONNX_FILES = {
    "dense": "dense.onnx",
    "pruned": "pruned.onnx",
    "pruned-sparse": "pruned.sparse.onnx",
    "compacted": "compacted.onnx",
    "int8": "int8.onnx",
    "int8-linear": "int8-linear.onnx",  # INT8 Gemm/MatMul only, convolutions stay float
}
INT8_VARIANTS = {"int8": None, "int8-linear": ("Gemm", "MatMul")}  # variant -> op types quantised (None: all)
BASELINE = "dense"


def export_dir(run: Path) -> Path:
    return Path(run) / EXPORT_DIR


def onnx_path(out_dir: Path, variant: str) -> Path:
    return Path(out_dir) / ONNX_FILES[variant]


def variant_of(path: Path) -> str:
    """The variant name of an exported file, or its stem for any other ONNX file."""
    names = {file: name for name, file in ONNX_FILES.items()}
    return names.get(Path(path).name, Path(path).name.removesuffix(".onnx"))
