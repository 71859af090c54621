"""Sparsity trajectories: survivor counts per group, read back from a run, and followed exactly."""

import pytest
import torch

from incop_core.imp import paths
from incop_core.pruning import magnitude
from incop_core.foundations.errors import IncopError
from incop_core.foundations.fileio import write_json_atomic
from incop_core.pruning.masks import Mask
from incop_core.imp.trajectory import follow_counts, group_survivors, trajectory


def hand_mask() -> Mask:
    conv = torch.ones(4, 2, 3, 3, dtype=torch.bool)
    conv[0] = False  # filter 0 dead
    conv[1, 0] = False  # filter 1 half dead, still alive
    fc = torch.ones(3, 8, dtype=torch.bool)
    fc[:, :5] = False
    return Mask({"conv.weight": conv, "fc.weight": fc})


def test_group_survivors_counts_weights_per_scope_and_alive_filters_of_all_but_the_classifier():
    mask = hand_mask()
    assert group_survivors(mask, "global") == {"*": 45 + 9}
    assert group_survivors(mask, "layer") == {"conv.weight": 45, "fc.weight": 9}
    assert group_survivors(mask, "neuron") == {"conv.weight": 45, "fc.weight": 9}
    assert group_survivors(mask, "filter") == {"*": 3}  # the classifier's outputs are never counted
    with pytest.raises(IncopError, match="unknown pruning scope"):
        group_survivors(mask, "diagonal")


@pytest.mark.parametrize("scope", ["global", "layer", "filter", "layer-filter"])
def test_pruning_follow_counts_lands_exactly_on_the_target(scope):
    mask = hand_mask()
    weights = {n: torch.randn(t.shape, generator=torch.Generator().manual_seed(1)) for n, t in mask.tensors.items()}
    now = group_survivors(mask, scope)
    target = {g: n - 2 for g, n in now.items()}
    counts = follow_counts(mask, scope, target)
    assert counts == {g: 2 for g in now}
    assert group_survivors(magnitude.prune(weights, mask, counts, scope), scope) == target


def test_follow_counts_refuses_growth_negative_and_foreign_groups():
    mask = hand_mask()
    assert follow_counts(mask, "layer", {"conv.weight": 45, "fc.weight": 0}) == {"conv.weight": 0, "fc.weight": 9}
    with pytest.raises(IncopError, match="keep 46 but it has 45 survivors"):
        follow_counts(mask, "layer", {"conv.weight": 46, "fc.weight": 9})
    with pytest.raises(IncopError, match="keep -1"):
        follow_counts(mask, "global", {"*": -1})
    with pytest.raises(IncopError, match=r"names groups \['\*'\] and misses \['conv.weight', 'fc.weight'\]"):
        follow_counts(mask, "layer", {"*": 10})


def test_trajectory_reads_iteration_masks_of_a_run_skipping_the_fine_tune(tmp_path):
    write_json_atomic(tmp_path / paths.CONFIG, {"prune": {"scope": "layer"}})
    mask = hand_mask()
    steps = [Mask({n: torch.ones_like(t) for n, t in mask.tensors.items()}), mask,
             Mask({"conv.weight": mask.tensors["conv.weight"], "fc.weight": torch.zeros(3, 8, dtype=torch.bool)})]
    for t, step in enumerate(steps):
        folder = paths.iteration_dir(tmp_path, t)
        step.save(folder / paths.MASK)
        write_json_atomic(folder / paths.RECORD, {"iteration": t})
    assert trajectory(tmp_path) == [{"conv.weight": 45, "fc.weight": 9}, {"conv.weight": 45, "fc.weight": 0}]
    with pytest.raises(IncopError, match="no readable config.json"):
        trajectory(tmp_path / "missing")
