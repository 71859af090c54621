"""What each stage of a run is given: retraining budgets, when the criterion is asked, the dense-cache key and the
criterion's context from iteration 0 (pure functions of the run config and iteration 0's record)."""

from __future__ import annotations

import hashlib
import json
from typing import Optional

import numpy as np

from incop_core.consistency.distances import Snapshot
from incop_core.foundations.hashdump import hashed_dump
from incop_core.criteria import CriterionContext
from incop_core.imp.config import RunConfig
from incop_core.pruning.decision import settle_steps
from incop_core.training.train import CheckPlan

DENSE_CACHE_VERSION = 3  # bump when iteration 0's record changes shape


def retrain_epochs(config: RunConfig, final: bool = True) -> float:
    """One iteration's retraining budget: the criterion's own (fixed epochs, the final iteration's cap), else
    max_epochs."""
    return config.prune.criterion.retrain_budget(config.prune.max_epochs, final)


def check_plan(criterion, final: bool = True, steps_per_epoch: int = 1) -> CheckPlan:
    """Ask every criterion at epoch 0 (a consistent network retrains 0 epochs), then as its config says; InCoP's
    intermediate iterations also check their next prune decision every eighth of an epoch."""
    every_steps = (settle_steps(steps_per_epoch) if criterion.checks_decision(final)
                   else criterion.steps_between_checks())
    return CheckPlan(at_start=True, every_epochs=criterion.check_every_epochs(), every_steps=every_steps)


def probe_flows_every_epoch(config: RunConfig) -> bool:
    """Only the paper's probe-estimator criterion with an auto epsilon needs probe flows after every fine-tuning
    epoch."""
    return config.prune.criterion.probes_flows_while_finetuning()


def dense_key(config: RunConfig) -> str:
    """Hash of what fine-tuning depends on: seed, data, model, optimiser (not retraining's lr, schedule or
    distillation), fine-tuning and probe settings."""
    raw = hashed_dump(config, include={"seed", "data", "model", "optim", "finetune_epochs", "finetune_plateau_pp"})
    # retraining's settings: runs that vary only these share one dense network
    for key in ("retrain_lr", "retrain_schedule", "retrain_distill", "distill_temperature"):
        raw["optim"].pop(key, None)
    raw["probe"] = [config.prune.probe_size, config.prune.probe_batch, probe_flows_every_epoch(config)]
    canonical = json.dumps({"version": DENSE_CACHE_VERSION, **raw}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def criterion_context(config: RunConfig, dense: dict, measure, snapshot,
                      reference: Optional[Snapshot]) -> CriterionContext:
    """Reference flows, noise and auto epsilons from iteration 0; an undefined auto epsilon falls back to the
    default."""
    criterion = config.prune.criterion
    default = type(criterion).model_fields["epsilon"].default if "epsilon" in type(criterion).model_fields else None
    auto = {k: (v if v is not None else default) for k, v in dense["auto_epsilon"].items()}
    noise = {k: v for k, v in dense.get("noise", {}).items() if v is not None}
    return CriterionContext(dense["dense_best_val_acc"], {k: np.array(v) for k, v in dense["reference"].items()},
                            measure, auto, snapshot, reference, noise)
