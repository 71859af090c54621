"""An iteration folder, written whole (`save_checkpoint`) and read back for the runner: weights and a mask that fit
the run's model, and iteration 0's record with what the criteria need. Anything else is one sentence naming the folder
to delete, so a resume never reaches a size mismatch or a KeyError deep in the loop."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Mapping

from torch import nn

from incop_core.foundations.fileio import save_torch_atomic, write_json_atomic
from incop_core.imp import paths
from incop_core.foundations.errors import IncopError
from incop_core.pruning.masks import Mask
from incop_core.models.zoo import non_finite, read_state, state_mismatch
from incop_core.imp.rundir import read_record_at

DENSE_DICTS = ("auto_epsilon", "reference")  # what iteration 0's record hands the criteria (plan.criterion_context)


def iteration_fix(folder: Path) -> str:
    return f"delete {folder} and re-run `incop prune` with the same settings to recompute that iteration"


def cache_fix(folder: Path) -> str:
    return (f"delete the shared dense cache {folder} (a fine-tuning reused by runs with the same data, model and "
            "optimiser) and re-run to fine-tune again")


def load_checkpoint(folder: Path, model: nn.Module, fix: str) -> tuple[dict, Mask]:
    """The weights and mask saved in `folder`, checked against `model`; a sentence ending in `fix` otherwise."""
    weights = Path(folder) / paths.WEIGHTS
    try:
        state = read_state(weights)
    except Exception as exc:
        raise IncopError(f"checkpoint {weights} is unreadable; {fix}") from exc
    problem = state_mismatch(model, state)
    if problem:
        raise IncopError(f"checkpoint {weights} does not fit the model of this run's config ({problem}); {fix}")
    bad = non_finite(state)
    if bad:
        raise IncopError(f"checkpoint {weights} holds NaN or infinite values in {bad}; {fix}")
    mask = Mask.load(Path(folder) / paths.MASK, fix)
    problem = mask.mismatch(model)
    if problem:
        raise IncopError(f"mask file {Path(folder) / paths.MASK} does not fit the model of this run's config "
                         f"({problem}); {fix}")
    return dict(state), mask


def dense_record(folder: Path, fix: str) -> dict:
    """Iteration 0's record, with the reference flows, auto epsilons and dense accuracy the criteria read."""
    record = read_record_at(folder, fix)
    missing = [key for key in DENSE_DICTS if not isinstance(record.get(key), dict)]
    missing += [] if "dense_best_val_acc" in record else ["dense_best_val_acc"]
    if missing:
        raise IncopError(f"iteration record {Path(folder) / paths.RECORD} lacks {missing[0]}, which the stopping "
                         f"criteria need; {fix}")
    return record


def run_dense_record(run: Path) -> dict:
    """dense_record of the run's iteration 0."""
    folder = paths.iteration_dir(run, 0)
    return dense_record(folder, iteration_fix(folder))


def save_checkpoint(final: Path, state: Mapping, mask: Mask, record: dict, extra: Mapping[str, object]) -> None:
    """Write an iteration folder (weights on the CPU, mask, record, `extra` tensors by file name) beside `final`, then
    rename it into place: a folder is whole or absent."""
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_torch_atomic(tmp / paths.WEIGHTS, {k: v.detach().cpu() for k, v in state.items()})
    mask.save(tmp / paths.MASK)
    write_json_atomic(tmp / paths.RECORD, record)
    for name, tensors in extra.items():
        save_torch_atomic(tmp / name, tensors)
    os.replace(tmp, final)
