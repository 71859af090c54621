"""The runner's side of the next prune decision (docs/algorithms.md §4.3): the counts an iteration prunes, the
decision function an intermediate iteration's InCoP criterion checks, and the dense network's decision noise τ.

`NextDecision` is mixed into `stages.Pruning`, whose state (config, model, data, probe, run directory) it uses.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from pathlib import Path

import torch

from incop_core.imp import paths
from incop_core.pruning import magnitude
from incop_core.criteria import CRITERIA, CriterionContext
from incop_core.pruning.decision import Decide, decision_noise, settle_steps
from incop_core.foundations.errors import IncopError
from incop_core.pruning.masks import Mask, prunable_weights
from incop_core.pruning.schedules import SCHEDULES, PruneState
from incop_core.training.train import train
from incop_core.imp.trajectory import follow_counts


class NextDecision:
    """Prune counts, the next-decision function and its noise for one run (needs the attributes of stages.Pruning)."""

    def prune_counts(self, t: int, weights: dict, mask: Mask) -> dict[str, int]:
        """How many entries iteration t prunes per group: the followed trajectory, or the schedule (then round_to)."""
        prune = self.config.prune
        if prune.follow is not None:
            return follow_counts(mask, prune.scope, prune.follow[t - 1])
        counts = SCHEDULES.build(prune.schedule).prune_counts(PruneState(weights, mask, prune.scope, t, self.model,
                                                                         self.probe, self.groups))
        if prune.round_to == "auto":
            return self.widths.counts(counts, mask)
        if not prune.round_to:
            return counts
        return magnitude.round_filter_counts(counts, mask, prune.round_to, prune.round_mode == "nearest")

    def decider(self, t: int, mask: Mask) -> Decide:
        """Weights -> the mask iteration t would prune `mask` to. A schedule that probes data (EGP) is asked once, on
        the first weights given, and its counts are held: every later decision is the magnitude ranking alone."""
        held: dict[str, dict[str, int]] = {}
        probes = SCHEDULES.build(self.config.prune.schedule).probes_data and self.config.prune.follow is None

        def decide(weights) -> Mask:
            counts = held.get("counts") or self.prune_counts(t, weights, mask)
            if probes:
                held["counts"] = counts
            return magnitude.prune(weights, mask, counts, self.config.prune.scope, self.groups)
        return decide

    def iteration_context(self, context: CriterionContext, t: int, mask: Mask,
                          final: bool) -> tuple[CriterionContext, float]:
        """The criterion's view of iteration t, and the seconds spent measuring the dense decision noise."""
        context = replace(context, final=final, probe_size=len(self.probe_split),
                          max_epochs=self.config.prune.max_epochs)
        if not self.config.prune.criterion.checks_decision(final):
            return context, 0.0
        start = time.perf_counter()
        decide = self.decider(t + 1, mask)
        # a probing schedule's counts: held now
        decide({n: w.detach() for n, w in prunable_weights(self.model).items()})
        dense, moved = self.settled_dense()
        return (replace(context, decide=decide, decision_noise=decision_noise(decide, dense, moved, mask)),
                time.perf_counter() - start)

    def settled_dense(self) -> tuple[dict, dict]:
        """The dense network's prunable weights, and the same after one decision-check interval of retraining (the
        calibration's seed and learning rate): how far noise alone moves a converged network's prune decision."""
        cached = paths.iteration_dir(self.run, 0) / paths.SETTLE
        if self._settle is None and cached.is_file():  # saved by the calibration: free
            state = self.load_iteration(0)[0]
            here = {n: state[n] for n in prunable_weights(self.model)}
            self._settle = (here, _settled_weights(cached, here))
        if self._settle is None:  # a fine-tuning from before settle.pt existed: measure it now (one interval)
            model = copy.deepcopy(self.model)
            model.load_state_dict(self.load_iteration(0)[0])
            here = {n: w.detach().clone() for n, w in prunable_weights(model).items()}
            fixed = CRITERIA.build(CRITERIA.config_for("fixed-epochs")(), None)
            epochs = settle_steps(self.steps_per_epoch()) / self.steps_per_epoch()
            train(model, self.data, Mask.dense(model), self.config.optim.retraining(), fixed, epochs, self.device,
                  self.config.seed + 999)
            self._settle = (here, {n: w.detach().clone() for n, w in prunable_weights(model).items()})
        return self._settle


def _settled_weights(path: Path, dense: dict) -> dict:
    """settle.pt, checked to hold a finite tensor of the right shape for every prunable weight of `dense`."""
    fix = f"delete {path} and re-run: it is measured again from the dense network (one decision-check interval)"
    try:
        moved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors for a damaged file
        raise IncopError(f"{path} is unreadable ({type(exc).__name__}); {fix}") from None
    for name, weight in dense.items():
        got = moved.get(name) if isinstance(moved, dict) else None
        if not isinstance(got, torch.Tensor) or got.shape != weight.shape or not torch.isfinite(got).all():
            raise IncopError(f"{path} has no usable weights for {name}; {fix}")
    return {name: moved[name] for name in dense}
