"""The dense network's own noise under retraining (docs/algorithms.md §4.3): how far one retraining epoch moves the
fine-tuned network, measured at the retraining learning rate. Runs that differ only in retraining settings share one
fine-tuning (the dense cache), so a run whose retraining rate differs from the one its shared fine-tuning was
calibrated at measures the noise again (one epoch) instead of reading the wrong one.

`DenseNoise` is mixed into `stages.Pruning`, whose state (config, model, data, run directory) it uses.
"""

from __future__ import annotations

from incop_core.pruning.decision import settle_steps
from incop_core.pruning.masks import Mask
from incop_core.training.finetune import ALL_NEEDS, SettleCapture, calibrate
from incop_core.training.train import CheckPlan, train

NOISE_AT = "noise_retraining"  # the record's key: the retraining settings the noise was measured with


class DenseNoise:
    """Measure, record and re-measure the dense noise of one run (needs the attributes of stages.Pruning)."""

    def noise_settings(self) -> dict:
        """What the noise depends on besides the fine-tuning: the first retraining epoch's learning rate (a cosine
        schedule starts at retrain_lr too)."""
        return {"lr": self.config.optim.retraining().lr}

    def measure_noise(self, mask: Mask, best_val_acc: float) -> dict:
        """The noise of the network in self.model (weights restored afterwards); keeps the settle weights."""
        reference = self.snapshot(self.model, mask, ALL_NEEDS)
        return calibrate(self.model, reference, lambda: self._retrain_once(mask), self.snapshot, mask, best_val_acc)

    def _retrain_once(self, mask: Mask) -> float:
        """One retraining epoch of the dense network (nothing pruned); its validation accuracy. The weights after its
        first decision-check interval are kept too (`settle.pt`): the decision noise of section 4.3."""
        capture = SettleCapture()
        result = train(self.model, self.data, mask, self.config.optim.retraining(), capture, 1, self.device,
                       self.config.seed + 999, plan=CheckPlan(every_steps=settle_steps(self.steps_per_epoch())))
        self._settle_moved = capture.weights
        return result.history[-1]["val_acc"]

    def renoised(self, record: dict, mask: Mask) -> dict:
        """Iteration 0's record with the noise of the network in self.model measured at this run's retraining rate
        (a shared fine-tuning calibrated at another one)."""
        noise = self.measure_noise(mask, record["dense_best_val_acc"])
        return {**record, "noise": noise, NOISE_AT: self.noise_settings()}
