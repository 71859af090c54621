"""Stages 4-5 on a tiny finished run: sparsity validation, export with parity, compaction, INT8, reuse."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from deploy.measure.runtime import accuracy, input_spec, logits
from deploy.errors import RunNotFinished, SparsityMismatch
from deploy.export import filenames
from deploy.export.archspec import load_compacted
from deploy.export.compact import max_abs_difference
from deploy.export.exporter import export_run
from deploy.export.reopen import load_run, normalised
from deploy.export.validate import validate_sparsity
from incop_core.imp import paths
from incop_core.imp.config import validate
from incop_core.foundations.fileio import read_json, save_torch_atomic, write_json_atomic
from incop_core.imp.runner import run_pruning

pytestmark = pytest.mark.slow  # the module trains a tiny run first (about 10 s on 2 cores)

FINAL = 1  # the fixture run's last iteration
INT8_MARGIN_PP = 3.0  # INT8 test accuracy stays within this many points of its float source


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """small-cnn on learnable synthetic images, one filter-pruning iteration: trains in a few seconds."""
    torch.set_num_threads(2)
    cfg = validate({"data": {"name": "synthetic", "synthetic_size": 512, "image_size": 16},
                    "optim": {"lr": 0.05, "retrain_lr": 0.05},
                    "model": {"width": 8}, "finetune_epochs": 3,
                    "prune": {"iterations": 1, "max_epochs": 3, "probe_size": 64, "probe_batch": 32, "scope": "filter",
                              "schedule": {"kind": "lth", "fraction": 0.5}, "criterion": {"kind": "fixed-epochs"}}})
    return run_pruning(cfg, tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def exported(run):
    return export_run(run, calibration_images=128)


def test_sparsity_report_matches_the_record(run):
    report = validate_sparsity(run)
    record = read_json(paths.iteration_dir(run, FINAL) / paths.RECORD)
    assert report["ok"] and report["iteration"] == FINAL
    assert report["nonzero"] == record["remaining"]
    assert all(r["masked_nonzero"] == 0 for r in report["layers"].values())
    assert report["zero_filters"] > 0


def _tampered_copy(run, tmp_path, edit):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(filenames.EXPORT_DIR, ".lock"))
    edit(paths.iteration_dir(copy, FINAL))
    return copy


def test_a_revived_masked_weight_fails_validation(run, tmp_path):
    def revive(folder):
        state = torch.load(folder / paths.WEIGHTS, weights_only=True)
        mask = torch.load(folder / paths.MASK, weights_only=True)
        name = next(n for n, m in mask.items() if not m.all())
        state[name][~mask[name]] = 0.5
        save_torch_atomic(folder / paths.WEIGHTS, state)

    with pytest.raises(SparsityMismatch, match="masked weights that are non-zero"):
        validate_sparsity(_tampered_copy(run, tmp_path, revive))


def test_a_record_that_disagrees_with_the_weights_fails_validation(run, tmp_path):
    def misrecord(folder):
        record = read_json(folder / paths.RECORD)
        name = next(iter(record["remaining_per_layer"]))
        record["remaining_per_layer"][name] += 1
        write_json_atomic(folder / paths.RECORD, record)

    with pytest.raises(SparsityMismatch, match="recorded"):
        validate_sparsity(_tampered_copy(run, tmp_path, misrecord))


def test_an_unfinished_run_is_refused(run, tmp_path):
    def unfinish(folder):
        status = read_json(folder.parent.parent / paths.STATUS)
        write_json_atomic(folder.parent.parent / paths.STATUS, {**status, "state": "running"})

    with pytest.raises(RunNotFinished, match="has not finished"):
        export_run(_tampered_copy(run, tmp_path, unfinish))


def test_every_variant_is_exported_checked_and_parity_verified(exported):
    assert set(exported.paths) == {"dense", "pruned", "pruned-sparse", "compacted", "int8", "int8-linear"}
    for name, path in exported.paths.items():
        proto = onnx.load(str(path))
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
        assert input_spec(path)["shape"][0] == "batch", name
    for name, figures in exported.parity.items():
        assert figures["max_abs"] <= 1e-4 and figures["top1_agreement"] >= 0.999, name


def test_exports_accept_any_batch_size(exported, run):
    loaded = load_run(run)
    images, _ = normalised(loaded.data.test, loaded.data, 5)
    model = loaded.model(loaded.final)
    with torch.no_grad():
        expected = model(images).numpy()
    for batch in (1, 5):
        assert np.abs(logits(exported.paths["pruned"], images[:batch].numpy()) - expected[:batch]).max() <= 1e-4


def test_compacted_model_is_smaller_exact_and_rebuilds_from_its_spec(exported, run):
    manifest = exported.manifest
    assert manifest["compaction"]["channels_removed"] > 0
    assert manifest["compaction"]["max_abs_vs_masked"] <= 1e-4
    assert manifest["artifacts"]["compacted"]["parameters"] < manifest["artifacts"]["pruned"]["parameters"]
    spec = json.loads((exported.out_dir / filenames.COMPACTED_SPEC).read_text())
    assert spec["layers"] and all("out" in layer for layer in spec["layers"].values())
    rebuilt = load_compacted(exported.out_dir / filenames.COMPACTED_WEIGHTS,
                             exported.out_dir / filenames.COMPACTED_SPEC)
    loaded = load_run(run)
    probe, _ = normalised(loaded.probe_split(), loaded.data)
    assert max_abs_difference(loaded.model(loaded.final), rebuilt, probe) <= 1e-4


def test_int8_accuracy_stays_within_the_stated_margin(exported, run):
    arts = exported.manifest["artifacts"]
    source = arts["int8"]["quantized_from"]
    assert arts[source]["accuracy"] >= 0.9  # a trained model, so the margin means something
    assert abs(arts["int8"]["accuracy"] - arts[source]["accuracy"]) * 100 <= INT8_MARGIN_PP
    proto = onnx.load(str(exported.paths["int8"]))
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    loaded = load_run(run)
    images, labels = normalised(loaded.data.test, loaded.data)
    assert accuracy(exported.paths["int8"], images.numpy(), labels.numpy()) == arts["int8"]["accuracy"]


def test_int8_linear_quantises_only_the_fully_connected_layers(exported):
    arts = exported.manifest["artifacts"]
    assert (abs(arts["int8-linear"]["accuracy"] - arts[arts["int8-linear"]["quantized_from"]]["accuracy"]) * 100
            <= INT8_MARGIN_PP)
    ops = {n.op_type for n in onnx.load(str(exported.paths["int8-linear"])).graph.node}
    assert "Conv" in ops and "QuantizeLinear" in ops  # float convolutions, quantised Gemm inputs
    quantised = [n for n in onnx.load(str(exported.paths["int8-linear"])).graph.node if n.op_type == "DequantizeLinear"]
    assert (quantised
            and arts["int8-linear"]["sizes"]["raw"] < arts[arts["int8-linear"]["quantized_from"]]["sizes"]["raw"])


def test_sizes_and_sparse_initializers_are_reported(exported):
    arts = exported.manifest["artifacts"]
    for entry in arts.values():
        assert set(entry["sizes"]) == {"raw", "gzip", "zstd"}
    report = arts["pruned-sparse"]["sparse_initializers"]
    assert report["tensors"] and all(t["sparsity"] > report["break_even_sparsity"] for t in report["tensors"].values())
    assert arts["pruned-sparse"]["sizes"]["raw"] < arts["pruned"]["sizes"]["raw"]


def test_a_finished_export_is_returned_not_recomputed(exported, run):
    stamps = {p: p.stat().st_mtime_ns for p in exported.out_dir.iterdir()}
    again = export_run(run)
    assert again.manifest == exported.manifest
    assert {p: p.stat().st_mtime_ns for p in exported.out_dir.iterdir()} == stamps
