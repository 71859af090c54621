"""Which retraining matters (issue #19, docs/algorithms.md §4.6): how the next prune decision and the output
consistency move while each iteration retrains, on the fair comparison's setting and on the main job's.

    .venv/bin/python bench/decision_curves.py fashion       # SAP (1, 2), global, 4000 images: ~30 min on a core
    .venv/bin/python bench/decision_curves.py structured    # the main job's layer-filter LTH path: ~1 h
    .venv/bin/python bench/decision_curves.py --summarise   # bench/results/decision_curves/summary.md from the JSONs

Every iteration retrains a fixed max_epochs (the trajectory is the fixed-epoch schedule's own); every eighth of an
epoch it records validation accuracy, top-1 disagreement with the dense network on the probe, and the Jaccard
distance of the next prune's removed set to the previous check's (`d_prev`) and to epoch 0's (`d_first`). The
dense network's own curve (iteration 0: two retraining epochs, nothing pruned) is the noise floor. At epoch ends
it also writes McNemar's z for the disagreement against the check 1, 2 and 3 epochs back (`z_lag`), the test the
final iteration's plateau rule uses. Writes bench/results/decision_curves/<setting>.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path

import torch

from incop_core import magnitude
from incop_core.config import validate
from incop_core.criteria import Verdict
from incop_core.decision import decision_distance, removed
from incop_core.distances import DISTANCES
from incop_core.fileio import write_json_atomic, write_text_atomic
from incop_core.masks import prunable_weights
from incop_core.rundir import open_run
from incop_core.runner import Pruning
from incop_core.train import CheckPlan, steps_per_epoch, train

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "results" / "decision_curves"
SETTINGS = {
    "fashion": ({"data": {"name": "fashion-mnist", "train_subset": 4000, "val_size": 2000}, "finetune_epochs": 15,
                 "prune": {"iterations": 6, "max_epochs": 10, "scope": "global", "probe_size": 1024,
                           "schedule": {"kind": "sap", "p": 1.0, "q": 2.0}, "criterion": {"kind": "fixed-epochs"}}}),
    "structured": ({"data": {"name": "fashion-mnist", "train_subset": 20000, "val_size": 5000}, "finetune_epochs": 15,
                    "prune": {"iterations": 5, "max_epochs": 5, "scope": "layer-filter", "round_to": 8,
                              "schedule": {"kind": "lth", "fraction": 0.2}, "criterion": {"kind": "fixed-epochs"}}}),
}
LAGS = (1, 2, 3)


class Recorder:
    """A criterion that never stops: the next decision, the disagreement and the predictions at every check."""

    def __init__(self, job: Pruning, reference, mask, t: int) -> None:
        self.job, self.reference, self.mask, self.t = job, reference, mask, t
        self.rows, self.first, self.previous, self.agree = [], None, None, {}
        self.distance = DISTANCES.get("disagreement")

    def check(self, epoch) -> Verdict:
        weights = {n: w.detach() for n, w in prunable_weights(epoch.model).items()}
        decision = removed(self.mask, self.job.decider(self.t, self.mask)(weights))
        snapshot = self.job.snapshot(epoch.model, self.mask, self.distance.needs)
        row = {"epoch": epoch.epoch, "val": epoch.val_acc, "dis": self.distance(snapshot, self.reference),
               "d_prev": None if self.previous is None else decision_distance(decision, self.previous),
               "d_first": None if self.first is None else decision_distance(decision, self.first)}
        if float(epoch.epoch).is_integer():
            agree = snapshot.logits.argmax(1) == self.reference.logits.argmax(1)
            row["z_lag"] = {lag: _mcnemar(self.agree[epoch.epoch - lag], agree) for lag in LAGS
                            if epoch.epoch - lag in self.agree}
            self.agree[epoch.epoch] = agree
        self.first, self.previous = self.first or decision, decision
        self.rows.append(row)
        return Verdict(False)


def _mcnemar(before: torch.Tensor, after: torch.Tensor) -> float:
    fixed, broken = int((after & ~before).sum()), int((~after & before).sum())
    return (fixed - broken) / math.sqrt(max(fixed + broken, 1))


def measure(setting: str, runs: Path) -> dict:
    torch.set_num_threads(1)
    config = validate({"seed": 0, "device": "cpu", **SETTINGS[setting]})
    run = runs / f"decision_curves_{setting}" / config.config_hash()
    job = Pruning(config, run, lambda kind, info: None)
    open_run(config, run.parent, run)
    dense, mask = job.finetune()
    job.model.load_state_dict(dense)
    reference = job.snapshot(job.model, mask, frozenset({"logits"}))
    every = max(1, steps_per_epoch(job.data, config.optim.batch_size) // 8)
    plan = CheckPlan(at_start=True, every_epochs=1, every_steps=every)
    structured = config.prune.scope in magnitude.STRUCTURED
    recorder = Recorder(job, reference, mask, 1)
    train(job.model, job.data, mask, config.optim.retraining(), recorder, 2, job.device, config.seed + 999, plan=plan)
    out = {"setting": setting, "config": config.model_dump(mode="json"), "checks_per_epoch": 8, "dense": recorder.rows}
    state = dense
    for t in range(1, config.prune.iterations + 1):
        job.model.load_state_dict(state)
        weights = {n: w.detach() for n, w in prunable_weights(job.model).items()}
        mask = magnitude.prune(weights, mask, job.prune_counts(t, weights, mask), config.prune.scope)
        job.model.load_state_dict(dense)
        mask.apply_(job.model, norms=structured)
        recorder = Recorder(job, reference, mask, t + 1)
        train(job.model, job.data, mask, config.optim.retraining(), recorder, config.prune.max_epochs, job.device,
              config.seed + 1000 * t, plan=plan, norms=structured)
        out[f"iteration_{t}"] = {"remaining_fraction": mask.remaining_total() / mask.total(), "rows": recorder.rows}
        state = copy.deepcopy(job.model.state_dict())
        write_json_atomic(OUT / f"{setting}.json", out)
        print(f"iteration {t}: {100 * out[f'iteration_{t}']['remaining_fraction']:.1f} % left", flush=True)
    return out


def summarise() -> str:
    """Per setting and iteration: disagreement at epoch 0/1/end, decision movement per check and since epoch 0."""
    lines = ["| setting | iteration | remaining % | dis e0 | dis e1 | dis end | d_prev first check | d_prev median | "
             "d_first end | val e1 | val end |", "|" + "---|" * 11]
    for path in sorted(OUT.glob("*.json")):
        data = json.loads(path.read_text())
        for key, entry in data.items():
            if not key.startswith("iteration_"):
                continue
            rows = entry["rows"]
            ends = {r["epoch"]: r for r in rows if float(r["epoch"]).is_integer()}
            moves = sorted(r["d_prev"] for r in rows if r["d_prev"] is not None)
            lines.append(f"| {data['setting']} | {key.split('_')[1]} | {100 * entry['remaining_fraction']:.1f} | "
                         f"{ends[0]['dis']:.4f} | {ends[1]['dis']:.4f} | {rows[-1]['dis']:.4f} | {rows[1]['d_prev']:.4f} | "
                         f"{moves[len(moves) // 2]:.4f} | {rows[-1]['d_first']:.4f} | {ends[1]['val']:.4f} | "
                         f"{rows[-1]['val']:.4f} |")
        dense = data["dense"]
        moves = sorted(r["d_prev"] for r in dense if r["d_prev"] is not None)
        lines.append(f"| {data['setting']} | dense (noise) | 100.0 | 0 | {dense[8]['dis']:.4f} | {dense[-1]['dis']:.4f} | "
                     f"{dense[1]['d_prev']:.4f} | {moves[len(moves) // 2]:.4f} | {dense[-1]['d_first']:.4f} | "
                     f"{dense[8]['val']:.4f} | {dense[-1]['val']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("setting", nargs="?", choices=sorted(SETTINGS))
    parser.add_argument("--runs", type=Path, default=ROOT / ".runs")
    parser.add_argument("--summarise", action="store_true")
    args = parser.parse_args(argv)
    if args.setting:
        measure(args.setting, args.runs)
    table = summarise()
    write_text_atomic(OUT / "summary.md", "# Decision and consistency curves (bench/decision_curves.py)\n\n" + table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
