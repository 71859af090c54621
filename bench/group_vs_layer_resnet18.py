"""Issue 21: ResNet-18 compacted edge-1t speed-up at the same kept share, `scope: group` against `layer-filter`.

    .venv/bin/python bench/group_vs_layer_resnet18.py --run bench/.runs/<deploy_resnet18's run>

Both masks start from the same fine-tuned dense weights (iteration 0 of the `layer-filter` run that
`bench/deploy_resnet18.py` trained): `layer-filter` is that run's own final mask (one LTH step, 75 % of each
layer's filters, retrained); `group` prunes every coupled channel group of the dense weights by group importance,
at the share whose compacted model keeps as many parameters as layer-filter's compacted one (the same kept share of
what ships), and `group-same-fraction` at the same 75 % (fewer parameters: group pruning also removes the readers).
Latency depends on the compacted shapes only, so neither needs retraining for this figure; the group masks' accuracy
is measured only with `--train`, which retrains both in group scope with the layer-filter run's own budget and
reports every variant's test accuracy (full split) beside its speed-up. Dense and both compacted models are exported
and timed interleaved in one process. Writes bench/results/group_vs_layer_resnet18.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
from pathlib import Path

import torch

from deploy.measure.flops import count_flops
from deploy.measure.timing import benchmark
from deploy.measure.runtime import read_model
from deploy.export.compact import compact, max_abs_difference
from deploy.export.onnx_export import export_onnx
from deploy.export.reopen import load_run, normalised
from incop_core.pruning import magnitude
from incop_core.foundations.fileio import write_json_atomic
from incop_core.pruning.groups import channel_groups
from incop_core.pruning.masks import Mask, prunable_weights
from incop_core.imp.runner import run_pruning

ROOT = Path(__file__).resolve().parent


def compacted(model, mask: Mask, images: torch.Tensor):
    model = copy.deepcopy(model).eval()
    mask.apply_(model, norms=True)
    result = compact(model, images)
    return result.model, {"channels_removed": result.channels_removed, "carriers": len(result.carriers),
                          "kept_weights": mask.remaining_total() / mask.total(),
                          "parity_max_abs": max_abs_difference(model, result.model, images),
                          "parameters": parameters(result.model)}


def parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="A finished layer-filter ResNet-18 run directory.")
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--train", action="store_true",
                        help="Train both group masks with the run's own budget (test "
                             "accuracy beside the speed-up); else prune the dense weights.")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    loaded = load_run(args.run)
    if loaded.config.prune.scope != "layer-filter":
        raise SystemExit(f"{args.run} was pruned in scope {loaded.config.prune.scope}; "
                         "point --run at a layer-filter run")
    images, _ = normalised(loaded.data.val, loaded.data, 8)
    dense = loaded.model(0)
    fraction = loaded.config.prune.schedule.fraction
    groups = channel_groups(dense, images)
    weights = {n: w.detach() for n, w in prunable_weights(dense).items()}
    start = Mask.dense(dense)
    survivors = magnitude.survivors(weights, start, "group", groups)

    def group_mask(share: float) -> Mask:
        return magnitude.prune(weights, start, {g: math.floor(share * v.numel()) for g, v in survivors.items()},
                               "group", groups)

    # the same kept share of what ships: layer-filter's compacted weights (its dead filters' readers go too)
    _, shipped = compacted(loaded.model(loaded.final), loaded.mask, images)
    target = shipped["parameters"] / parameters(dense)
    matched = min((k / 100 for k in range(1, 100)),
                  key=lambda f: abs(group_mask(f).remaining_total() / start.total() - target))
    masks = {"layer-filter": loaded.mask, "group": group_mask(matched), "group-same-fraction": group_mask(fraction)}
    models = {"layer-filter": loaded.model(loaded.final), "group": dense, "group-same-fraction": dense}
    accuracy = {"layer-filter": loaded.record["test_acc"]}
    if args.train:  # the same run in group scope at both shares: trained masks and weights, and their accuracy
        for scope, share in (("group", matched), ("group-same-fraction", fraction)):
            raw = loaded.config.model_dump(mode="json")
            raw["prune"].update(scope="group", schedule={**raw["prune"]["schedule"], "fraction": share})
            trained = load_run(run_pruning(type(loaded.config).model_validate(raw), args.run.parent))
            masks[scope], models[scope], accuracy[scope] = (trained.mask, trained.model(trained.final),
                                                            trained.record["test_acc"])
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"dense": export_onnx(dense, images[:1], Path(tmp) / "dense.onnx")}
        facts = {"dense": {"parameters": parameters(dense)}}
        for scope, mask in masks.items():
            model, facts[scope] = compacted(models[scope], mask, images)
            if scope in accuracy:
                facts[scope]["test_acc"] = accuracy[scope]
            facts[scope]["share_of_dense_parameters"] = facts[scope]["parameters"] / facts["dense"]["parameters"]
            paths[scope] = export_onnx(model, images[:1], Path(tmp) / f"{scope}.onnx")
        for name, path in paths.items():
            facts[name]["macs"] = count_flops(read_model(path))
        bench = benchmark(paths, ("edge-1t", "cpu-2t"), baseline="dense", warmup=5)
    out = {"run": loaded.path.name, "fraction_per_layer_or_group": fraction, "group_fraction_matched": matched,
           "variants": facts,
           "p50_ms": {p: {n: m["p50_ms"] for n, m in bench["profiles"][p]["models"].items()}
                      for p in bench["profiles"]},
           "speedup": {p: {n: m.get("speedup_p50") for n, m in bench["profiles"][p]["models"].items()}
                       for p in bench["profiles"]},
           "command": "python bench/group_vs_layer_resnet18.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    out["group_at_least_layer_filter_edge_1t"] = (out["speedup"]["edge-1t"]["group"]
                                                  >= out["speedup"]["edge-1t"]["layer-filter"])
    write_json_atomic(args.out / "group_vs_layer_resnet18.json", out)
    print(json.dumps({k: out[k] for k in ("speedup", "group_at_least_layer_filter_edge_1t")}, indent=1))
    print({n: {k: v for k, v in f.items() if k != "parity_max_abs"} for n, f in facts.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
