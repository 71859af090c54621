"""The methods a comparison runs (docs/algorithms.md §4.6), each a set of prune-section overrides on the base config:
the schedules with fixed epochs, accuracy stopping, InCoP with any distance, a budget-matched method
(`matched-incop-X`, fixed epochs equal to incop-X's mean per iteration), `final-only` (0 epochs in every iteration but
the last) and `one-shot` (prune once to the trajectory's final survivors); both retrain the last one max_epochs.
Also the run order of one seed and the --seeds parser."""

from __future__ import annotations

import json
from typing import Optional

from incop_core.consistency.distances import DISTANCES
from incop_core.experiments.compare_stats import DEFAULT_REWIND, MATCHED
from incop_core.foundations.errors import ConfigError
from incop_core.imp.config import RunConfig, validate
from incop_core.imp.records import totals

FIXED = {"kind": "fixed-epochs"}
SCHEDULE_METHODS = ("lth", "sap", "egp")  # a schedule with fixed max_epochs; the base config's one is the source
REWINDS = ("finetuned", "previous")
FINAL_ONLY, ONE_SHOT = "final-only", "one-shot"
REWIND_FREE = (FINAL_ONLY, ONE_SHOT)  # they retrain only the final network, from the fine-tuned weights either way
LEGACY: dict[str, dict] = {  # prune-section overrides; every method but the schedules keeps the base schedule
    "accuracy": {"criterion": {"kind": "accuracy", "tolerance": "auto"}},
    FINAL_ONLY: {"criterion": {**FIXED, "intermediate_epochs": 0}},
    ONE_SHOT: {"criterion": FIXED},
    "incop-if": {"criterion": {"kind": "incop-if"}},
    "incop-gf": {"criterion": {"kind": "incop-gf"}},
    "incop-if-auto": {"criterion": {"kind": "incop-if", "epsilon": "auto"}},
    "incop-gf-auto": {"criterion": {"kind": "incop-gf", "epsilon": "auto"}},
}
DEFAULT_METHODS = ("accuracy", "incop-disagreement", "matched-incop-disagreement", FINAL_ONLY, ONE_SHOT)


def source_method(base: RunConfig) -> str:
    """The trajectory source: the base config's schedule retraining a fixed max_epochs every iteration (SAP, LTH...)."""
    return base.prune.schedule.kind


def incop_methods() -> list[str]:
    return [m for m in LEGACY if m.startswith("incop-")] + [f"incop-{d}" for d in DISTANCES.names()]


def method_names() -> list[str]:
    return [*SCHEDULE_METHODS, *(m for m in LEGACY if not m.startswith("incop-")), *incop_methods(),
            *(MATCHED + m for m in incop_methods())]


def overrides(method: str) -> dict:
    """The prune-section settings that make `method` (before follow, rewind and matched epochs)."""
    if method in SCHEDULE_METHODS:
        return {"schedule": {"kind": method}, "criterion": FIXED}
    if method in LEGACY:
        return LEGACY[method]
    if method.startswith("incop-") and method[len("incop-"):] in DISTANCES.names():
        return {"criterion": {"kind": "incop", "distance": method[len("incop-"):], "epsilon": "auto"}}
    if method.startswith(MATCHED) and method[len(MATCHED):] in incop_methods():
        return {"criterion": FIXED}
    raise ConfigError(f"unknown method {method!r}; choose from: {', '.join(method_names())}")


def method_raw(base: RunConfig, method: str, seed: int, rewind: str = DEFAULT_REWIND,
               follow: Optional[list[dict[str, int]]] = None, epochs: Optional[float] = None) -> dict:
    """The raw run config of one method: base settings, the method's plug-ins, then rewind, follow and epochs. A
    schedule method keeps the base preset when it is the base's schedule; one-shot prunes once, to the end of
    `follow`."""
    raw = base.model_dump(mode="json")
    raw["seed"] = seed
    prune = raw["prune"]
    change = json.loads(json.dumps(overrides(method)))
    if change.get("schedule", {}).get("kind") == prune["schedule"]["kind"]:
        change.pop("schedule")
    prune.update(change)
    prune["rewind"] = rewind
    if follow is not None:
        prune["follow"] = [follow[-1]] if method == ONE_SHOT else follow
        prune["iterations"] = 1 if method == ONE_SHOT else prune["iterations"]
    if epochs is not None:
        prune["criterion"]["epochs"] = epochs
    return raw


def method_config(base: RunConfig, method: str, seed: int, rewind: str = DEFAULT_REWIND,
                  follow: Optional[list[dict[str, int]]] = None, epochs: Optional[float] = None) -> RunConfig:
    return validate(method_raw(base, method, seed, rewind, follow, epochs))


def matched_epochs(records: list[dict]) -> float:
    """Fixed epochs per iteration giving the same total retraining as an InCoP run's records."""
    t = totals(records)
    if not t["iterations"]:
        raise ConfigError("the InCoP run to match finished no pruning iteration, so there is no budget to match; "
                          "raise prune.iterations")
    return t["retrain_epochs"] / t["iterations"]


MAX_SEED = 2**32 - 1  # every seed a run derives (seed + 1000 t, ...) stays well inside torch's 64-bit range


def parse_seeds(text: str) -> list[int]:
    """--seeds: distinct integers 0..MAX_SEED, comma-separated; anything else is one sentence."""
    parts = [s.strip() for s in text.split(",") if s.strip()]
    if not parts:
        raise ConfigError(f"--seeds needs at least one seed (got {text!r}); pass comma-separated integers, "
                          "e.g. --seeds 0,1,2")
    try:
        seeds = [int(s) for s in parts]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers (got {text!r}); pass e.g. --seeds 0,1,2") from None
    if any(not 0 <= s <= MAX_SEED for s in seeds):
        raise ConfigError(f"--seeds must lie between 0 and {MAX_SEED} (got {text!r}); pass smaller seeds")
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ConfigError(f"--seeds lists {', '.join(map(str, twice))} more than once; give each seed once, since "
                         "repeats would be counted as independent runs")
    return seeds


def plan(methods: list[str], rewinds: list[str], source: str = "sap") -> list[tuple[str, str]]:
    """(method, rewind) in run order for one seed: the trajectory source first, budget-matched methods last. The source
    runs under every rewind, as the reference of the methods beside it; final-only and one-shot once."""
    methods = list(dict.fromkeys([source, *methods]))
    for method in methods:
        overrides(method)
        if method.startswith(MATCHED) and method[len(MATCHED):] not in methods:
            raise ConfigError(f"{method} matches the budget of {method[len(MATCHED):]}; add that method to --methods "
                              "too")
    unknown = [r for r in rewinds if r not in REWINDS]
    if unknown or not rewinds:
        raise ConfigError(f"unknown rewinds {unknown or rewinds}; choose from: {', '.join(REWINDS)}")
    order = [(source, DEFAULT_REWIND)]
    for matched in (False, True):
        order += [(m, r) for r in rewinds for m in methods if m.startswith(MATCHED) == matched and (m, r) != order[0]
                  and (m not in REWIND_FREE or r == DEFAULT_REWIND)]
    return order
