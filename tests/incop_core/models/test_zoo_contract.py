"""The zoo contract (issue 21): every architecture the product knows, and a user's own module, goes through group
pruning, compaction, ONNX export, INT8 and the edge benchmark at a tiny input, and comes out smaller and faster."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from deploy.measure.flops import count_flops
from deploy.measure.timing import benchmark
from deploy.measure.runtime import read_model
from deploy.export.compact import compact, max_abs_difference
from deploy.export.onnx_export import export_onnx, parity
from deploy.export.quantize import quantize_int8
from incop_core.pruning import magnitude
from incop_core.pruning.groups import channel_groups
from incop_core.pruning.masks import Mask, prunable_weights
from incop_core.models.zoo import ModelConfig, build_model

ZOO = ["small-cnn", "resnet18", "resnet34", "resnet50", "vgg16", "mobilenet_v2", "mobilenet_v3_small",
       "mobilenet_v3_large", "efficientnet_b0", "regnet_y_400mf", "tests.support.custom_model:tiny_net"]
SHAPE, CLASSES = (1, 32, 32), 10


def _trained_looking(model: nn.Module) -> nn.Module:
    """BatchNorm statistics and weights away from their init (a fresh network's zero-init layers and unit norms hide
    a wrongly kept or dropped channel)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.rand(module.num_features, generator=gen) * 0.4 - 0.2)
                module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
                module.bias.copy_(torch.rand(module.num_features, generator=gen) * 0.4 - 0.2)
    return model.eval()


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_prunes_compacts_exports_quantises_and_runs_faster(name, tmp_path):
    torch.manual_seed(0)
    kwargs = {"width": 32} if ":" in name else {}  # the custom module at a width round_to 8 can cut
    model = _trained_looking(build_model(ModelConfig(name=name, kwargs=kwargs), SHAPE, CLASSES))
    images = torch.randn(8, *SHAPE)
    groups = channel_groups(model, images)
    weights = {n: w.detach() for n, w in prunable_weights(model).items()}
    dense_mask = Mask.dense(model)
    counts = {g: math.floor(0.3 * v.numel())
              for g, v in magnitude.survivors(weights, dense_mask, "group", groups).items()}
    counts = magnitude.round_filter_counts(counts, dense_mask, 8)  # the main job's round_to: SIMD-sized widths
    mask = magnitude.prune(weights, dense_mask, counts, "group", groups)
    dense = export_onnx(model, images[:1], tmp_path / "dense.onnx")
    mask.apply_(model, norms=True)
    result = compact(model, images)
    with torch.no_grad():
        scale = max(float(model(images).abs().max()), 1.0)
    assert result.channels_removed == sum(counts.values()) > 0
    assert max_abs_difference(model, result.model, images) <= 1e-4 * scale

    compacted = export_onnx(result.model, images[:1], tmp_path / "compacted.onnx")
    assert parity(compacted, result.model, images)["top1_agreement"] == 1.0
    int8 = quantize_int8(compacted, tmp_path / "int8.onnx", images.numpy().astype(np.float32))
    assert count_flops(read_model(compacted)) < count_flops(read_model(dense))
    edge = benchmark({"dense": dense, "compacted": compacted, "int8": int8}, ("edge-1t",), warmup=3, rounds=5,
                     per_round=5, peak_size=128)["profiles"]["edge-1t"]["models"]
    assert edge["compacted"]["p50_ms"] < edge["dense"]["p50_ms"], {k: v["p50_ms"] for k, v in edge.items()}
    assert edge["int8"]["p50_ms"] > 0


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "tests.support.custom_model:tiny_net"])
def test_the_product_path_prunes_and_exports_a_zoo_model_in_group_scope(name, tmp_path):
    """`incop prune` then `incop export`, as the pipeline calls them: a group run's export removes exactly its pruned
    channels, passes the export's own parity checks and writes every variant."""
    from deploy.export.exporter import export_run
    from incop_core.imp import paths
    from incop_core.imp.config import validate
    from incop_core.imp.runner import run_pruning

    kwargs = {"kwargs": {"width": 16}} if ":" in name else {}
    cfg = validate({"data": {"name": "synthetic", "synthetic_size": 192, "image_size": 16},
                    "model": {"name": name, **kwargs},
                    "finetune_epochs": 1, "prune": {"iterations": 1, "max_epochs": 1, "probe_size": 32,
                                                    "probe_batch": 32, "scope": "group", "round_to": 4,
                                                    "schedule": {"kind": "lth", "fraction": 0.3},
                                                    "criterion": {"kind": "fixed-epochs"}}})
    run = run_pruning(cfg, tmp_path)
    mask = Mask.load(paths.iteration_dir(run, 1) / paths.MASK)
    export = export_run(run, parity_images=64, calibration_images=32)
    compaction = export.manifest["compaction"]
    model = build_model(cfg.model, (1, 16, 16), cfg.data.num_classes)
    pruned = {g.root[:-len(".weight")]: int((~g.alive(mask)).sum())
              for g in channel_groups(model, torch.zeros(2, 1, 16, 16))}
    assert compaction["removed_per_root"] == {root: n for root, n in pruned.items() if n} and sum(pruned.values()) > 0
    assert {"dense", "compacted", "int8"} <= set(export.paths)
