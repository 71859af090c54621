"""Sparsity trajectories: survivors per group after each iteration, read from one run and followed by others.

A fair comparison (docs/algorithms.md §4.6) gives every method the same remaining weights per iteration: the
schedule's first run writes the trajectory, the others prune exactly down to it (`prune.follow`).
Groups are the keys `magnitude.survivors` ranks over: "*" for global/filter scope, layer names otherwise.
"""

from __future__ import annotations

from pathlib import Path

from incop_core.imp import paths
from incop_core.pruning import magnitude
from incop_core.foundations.errors import IncopError
from incop_core.foundations.fileio import read_json
from incop_core.pruning.masks import Mask
from incop_core.imp.rundir import finished_iterations


def group_survivors(mask: Mask, scope: str) -> dict[str, int]:
    """Survivors per group as the schedules count them: weights, or alive filters in `filter` scope."""
    if scope not in magnitude.SCOPES:
        raise IncopError(f"unknown pruning scope {scope!r}; choose one of: {', '.join(magnitude.SCOPES)}")
    shapes = {name: keep.float() for name, keep in mask.tensors.items()}  # only the mask matters for counting
    return {group: int(values.numel()) for group, values in magnitude.survivors(shapes, mask, scope).items()}


def run_scope(run: Path) -> str:
    """The pruning scope a run was made with, read from its saved config."""
    try:
        return read_json(Path(run) / paths.CONFIG)["prune"]["scope"]
    except (OSError, ValueError, KeyError, TypeError):
        raise IncopError(f"{run} holds no readable {paths.CONFIG}; point at a finished run directory") from None


def trajectory(run: Path) -> list[dict[str, int]]:
    """Survivors per group after iterations 1..N of a run (entry t-1 is iteration t), from its saved masks."""
    scope = run_scope(run)
    return [group_survivors(Mask.load(paths.iteration_dir(run, t) / paths.MASK), scope)
            for t in finished_iterations(Path(run)) if t >= 1]


def follow_counts(mask: Mask, scope: str, target: dict[str, int]) -> dict[str, int]:
    """Counts to prune per group so that `mask` ends with exactly `target` survivors per group."""
    current = group_survivors(mask, scope)
    if set(target) != set(current):
        unknown, missing = sorted(set(target) - set(current)), sorted(set(current) - set(target))
        raise IncopError(f"prune.follow names groups {unknown} and misses {missing} of this {scope}-scope model; "
                         "follow a trajectory recorded with the same model and scope")
    for group, wanted in target.items():
        if not 0 <= wanted <= current[group]:
            raise IncopError(f"prune.follow asks group {group!r} to keep {wanted} but it has {current[group]} "
                             "survivors; a followed trajectory can only shrink, so follow one recorded from the same "
                             "starting mask")
    return {group: current[group] - target[group] for group in current}
