"""Stages 4-5 for a finished run: validate sparsity, compact, export every variant, verify each one.

Writes `<run>/export/` (names in filenames.py); every file is written atomically and the manifest last, so a finished
export is returned as it is instead of being recomputed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import torch

from incop_core.foundations.errors import CorruptFile
from incop_core.foundations.fileio import read_json, write_bytes_atomic, write_json_atomic
from incop_core.imp.runlock import locked

from ..measure.runtime import logits, read_model
from ..measure.sizes import file_sizes
from ..errors import ExportFailed
from . import filenames as names
from .archspec import architecture_spec, save_compacted
from .compact import compact, max_abs_difference
from .depth import reduce_depth
from .onnx_export import MAX_ABS, OPSET, export_onnx, torch_logits, verify_parity
from .quantize import quantize_int8
from .reopen import LoadedRun, load_run, normalised, require_finished
from .sparse import same_initializers, to_dense_initializers, to_sparse_initializers
from .validate import validate_sparsity

MANIFEST_FORMAT = 3  # 2: every variant carries val_accuracy, which chooses what is published; 3: int8-linear


@dataclass(frozen=True)
class ExportResult:
    """Where the export lives and what its manifest says (parity, accuracy, sizes per variant)."""

    out_dir: Path
    manifest: dict

    @property
    def paths(self) -> dict[str, Path]:
        made = self.manifest["artifacts"]
        return {name: self.out_dir / made[name]["file"] for name in names.ONNX_FILES if name in made}

    @property
    def parity(self) -> dict[str, dict]:
        return {name: entry["parity"] for name, entry in self.manifest["artifacts"].items() if entry.get("parity")}


class _Exporter:
    """Exports variants of one run into `out_dir`, checking each against PyTorch on real test images."""

    def __init__(self, loaded: LoadedRun, out_dir: Path, parity_images: int) -> None:
        self.loaded, self.out_dir, self.parity_images = loaded, out_dir, parity_images
        self.images, self.labels = normalised(loaded.data.test, loaded.data)
        self.val_images, self.val_labels = normalised(loaded.data.val, loaded.data)
        self.outputs: dict[str, np.ndarray] = {}

    def _entry(self, name: str, path: Path, ort_out: np.ndarray, extra: dict) -> dict:
        """Test accuracy is reported; validation accuracy is what chooses the published variant."""
        self.outputs[name] = ort_out
        accuracy = float((ort_out.argmax(1) == self.labels.numpy()).mean())
        val_out = logits(path, self.val_images.numpy())
        val_accuracy = float((val_out.argmax(1) == self.val_labels.numpy()).mean())
        return {"file": path.name, "accuracy": accuracy, "val_accuracy": val_accuracy, "sizes": file_sizes(path),
                **extra}

    def float_variant(self, name: str, model: torch.nn.Module) -> dict:
        path = export_onnx(model, self.images[:2], names.onnx_path(self.out_dir, name))
        ort_out = logits(path, self.images.numpy())
        n = self.parity_images
        figures = verify_parity(path.name, torch_logits(model, self.images[:n]), ort_out[:n])
        return self._entry(name, path, ort_out, {"parity": figures})

    def sparse_variant(self) -> Optional[dict]:
        """pruned.onnx with sparse initializers where a tensor is past break-even; None when none is."""
        dense_proto = read_model(names.onnx_path(self.out_dir, "pruned"))
        proto, report = to_sparse_initializers(dense_proto)
        if not report["tensors"]:
            return None
        if not same_initializers(to_dense_initializers(proto), dense_proto):
            raise ExportFailed("sparse initializers do not round-trip to the dense tensors; check that onnx is version "
                               "1.23.2 as pinned")
        onnx.checker.check_model(proto)  # full_check's shape inference does not read sparse initializers
        path = names.onnx_path(self.out_dir, "pruned-sparse")
        write_bytes_atomic(path, proto.SerializeToString())
        ort_out = logits(path, self.images.numpy())
        figures = verify_parity(path.name, self.outputs["pruned"], ort_out)
        return self._entry("pruned-sparse", path, ort_out, {"parity": figures, "sparse_initializers": report})

    def int8_variant(self, source: str, calibration: int, name: str = "int8") -> dict:
        """`name` is one of artifacts.INT8_VARIANTS: all operators, or only the fully connected ones."""
        cal_images, _ = normalised(self.loaded.data.train, self.loaded.data, calibration)
        op_types = names.INT8_VARIANTS[name]
        path = quantize_int8(names.onnx_path(self.out_dir, source), names.onnx_path(self.out_dir, name),
                             cal_images.numpy(), op_types)
        ort_out = logits(path, self.images.numpy())
        agreement = float((ort_out.argmax(1) == self.outputs[source].argmax(1)).mean())
        return self._entry(name, path, ort_out, {"quantized_from": source, "quantized_ops": list(op_types or ["all"]),
                                                 "calibration_images": len(cal_images),
                                                 "top1_agreement_with_source": agreement})

    def compacted(self, pruned: torch.nn.Module) -> tuple[Optional[torch.nn.Module], dict]:
        """Compact the pruned model, check it against the masked one on the probe set, save weights + spec."""
        probe, _ = normalised(self.loaded.probe_split(), self.loaded.data)
        reduced, blocks = reduce_depth(pruned)  # zero-ended residual branches first: they leave the graph
        result = compact(reduced, probe[:4])
        worst = max_abs_difference(pruned, result.model, probe)
        summary = {"blocks_removed": blocks, "channels_removed": result.channels_removed,
                   "removed_per_root": result.removed,
                   "folded": result.folded, "probe_images": len(probe), "max_abs_vs_masked": worst,
                   "max_abs_limit": MAX_ABS}
        if worst > MAX_ABS:
            raise ExportFailed(f"the compacted model differs from the masked one by {worst:.2e} (limit {MAX_ABS:g}) "
                               "on the probe set; use `incop export --no-compact` and check the model for unsupported "
                               "layers")
        if not result.channels_removed and not blocks:
            return None, summary
        cfg, data = self.loaded.config, self.loaded.data
        spec = architecture_spec(result.model, cfg.model, data.input_shape, data.num_classes)
        save_compacted(result.model, spec, self.out_dir / names.COMPACTED_WEIGHTS, self.out_dir / names.COMPACTED_SPEC)
        return result.model, summary


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _manifest(loaded: LoadedRun, variants: dict, sparsity: dict, compaction: dict) -> dict:
    data = loaded.data
    return {"format": MANIFEST_FORMAT, "run": loaded.path.name, "iteration": loaded.final, "opset": OPSET,
            "artifacts": variants,
            "input_spec": {"name": "input", "shape": ["batch", *data.input_shape], "dtype": "float32",
                           "layout": "NCHW", "mean": list(data.mean), "std": list(data.std)},
            "classes": data.num_classes, "test_images": len(data.test), "val_images": len(data.val),
            "sparsity": {k: sparsity[k] for k in ("sparsity", "nonzero", "total", "zero_filters")},
            "compaction": compaction, "versions": _versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "onnx", "onnxruntime", "torch-pruning")}


def existing_export(out_dir: Path) -> Optional[ExportResult]:
    """The finished export in `out_dir`, when its manifest and every file it names are there."""
    manifest_path = Path(out_dir) / names.MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        result = ExportResult(Path(out_dir), read_json(manifest_path))
    except CorruptFile:  # a damaged manifest: export again
        return None
    if not isinstance(result.manifest, dict) or result.manifest.get("format") != MANIFEST_FORMAT:
        return None  # made by an older incop (no validation accuracy): redo
    return result if all(p.is_file() for p in result.paths.values()) else None


def export_run(run: Path, out_dir: Optional[Path] = None, parity_images: int = 2000, calibration_images: int = 256,
               int8: bool = True, compaction: bool = True, lock_wait: float = 0.0) -> ExportResult:
    """Validate, compact and export a finished run; returns the existing export when it is complete. A run another
    process is exporting is waited for up to `lock_wait` seconds, and its export then reused."""
    run = Path(run)
    out_dir = Path(out_dir) if out_dir else names.export_dir(run)
    require_finished(run)
    done = existing_export(out_dir)
    if done:
        return done
    with locked(run, wait=lock_wait):
        done = existing_export(out_dir)  # another process may have finished it while we waited
        if done:
            return done
        sparsity = validate_sparsity(run)
        write_json_atomic(out_dir / names.SPARSITY, sparsity)
        loaded = load_run(run)
        job = _Exporter(loaded, out_dir, parity_images)
        dense, pruned = loaded.model(0), loaded.model(loaded.final)
        variants = {"dense": job.float_variant("dense", dense), "pruned": job.float_variant("pruned", pruned)}
        sparse = job.sparse_variant()
        if sparse:
            variants["pruned-sparse"] = sparse
        compacted, summary = job.compacted(pruned) if compaction else (None, {"skipped": True})
        if compacted is not None:
            variants["compacted"] = job.float_variant("compacted", compacted)
        for name, model in (("dense", dense), ("pruned", pruned), ("compacted", compacted)):
            if name in variants:
                variants[name]["parameters"] = _params(model)
        if int8:
            for name in names.INT8_VARIANTS:
                variants[name] = job.int8_variant("compacted" if compacted is not None else "pruned",
                                                  calibration_images, name)
        manifest = _manifest(loaded, variants, sparsity, summary)
        write_json_atomic(out_dir / names.MANIFEST, manifest)
    return ExportResult(out_dir, manifest)
