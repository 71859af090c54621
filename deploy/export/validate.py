"""Stage 4: the final model's measured sparsity equals the run's record and respects its mask
(docs/algorithms.md §5)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from incop_core.imp import paths
from incop_core.foundations.fileio import read_json
from incop_core.pruning.masks import Mask
from incop_core.imp.rundir import finished_iterations

from ..errors import SparsityMismatch
from .reopen import load_state, require_finished


def _layer_report(weight: torch.Tensor, keep: torch.Tensor, recorded: int) -> dict:
    total, nonzero = weight.numel(), int(torch.count_nonzero(weight))
    rows = weight.reshape(weight.shape[0], -1)
    return {"total": total, "recorded_remaining": recorded, "mask_remaining": int(keep.sum()), "nonzero": nonzero,
            "masked_nonzero": int(torch.count_nonzero(weight[~keep])), "sparsity": 1.0 - nonzero / total,
            "recorded_sparsity": 1.0 - recorded / total, "filters": rows.shape[0],
            "zero_filters": int((rows == 0).all(dim=1).sum())}


def _problem(name: str, row: dict) -> str | None:
    if row["masked_nonzero"]:
        return (f"layer {name} has {row['masked_nonzero']} masked weights that are non-zero; the checkpoint does not "
                f"respect its mask, so delete that iteration and re-run `incop prune` to recompute it")
    if row["mask_remaining"] != row["recorded_remaining"] or row["nonzero"] != row["recorded_remaining"]:
        return (f"layer {name} measures {100 * row['sparsity']:.3f} % sparsity ({row['nonzero']} non-zero weights, "
                f"mask keeps {row['mask_remaining']}) but the run recorded {100 * row['recorded_sparsity']:.3f} %; "
                f"delete that iteration and re-run `incop prune` to recompute it")
    return None


def check_sparsity(state: Mapping[str, torch.Tensor], mask: Mask, recorded: Mapping[str, int]) -> dict:
    """Per-layer measured vs recorded sparsity; raises SparsityMismatch on the first disagreement."""
    missing = sorted(set(mask.tensors) ^ set(recorded)) + sorted(n for n in mask.tensors if n not in state)
    if missing:
        raise SparsityMismatch(f"the mask, the record and the weights name different layers ({missing[:3]}); "
                               f"the run directory is inconsistent, so re-run `incop prune` in a fresh directory")
    layers = {}
    for name, keep in mask.tensors.items():
        weight = state[name].detach().float()
        if tuple(weight.shape) != tuple(keep.shape):
            raise SparsityMismatch(f"mask of layer {name} has shape {tuple(keep.shape)} but its weight has "
                                   f"{tuple(weight.shape)}; use the mask saved with these weights")
        layers[name] = _layer_report(weight, keep, int(recorded[name]))
        problem = _problem(name, layers[name])
        if problem:
            raise SparsityMismatch(problem)
    total = sum(r["total"] for r in layers.values())
    nonzero = sum(r["nonzero"] for r in layers.values())
    return {"ok": True, "total": total, "nonzero": nonzero, "sparsity": 1.0 - nonzero / max(total, 1),
            "zero_filters": sum(r["zero_filters"] for r in layers.values()), "layers": layers}


def validate_sparsity(run: Path) -> dict:
    """Check a finished run's final checkpoint against its mask and record; returns the per-layer report."""
    require_finished(run)
    final = finished_iterations(Path(run))[-1]
    folder = paths.iteration_dir(Path(run), final)
    record = read_json(folder / paths.RECORD)
    report = check_sparsity(load_state(folder / paths.WEIGHTS), Mask.load(folder / paths.MASK),
                            record["remaining_per_layer"])
    return {"iteration": final, **report}
