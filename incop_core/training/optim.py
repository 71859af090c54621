"""The optimiser settings of fine-tuning and retraining (part of the run config, owned by training)."""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from incop_core.foundations.hashdump import NEW_SETTING


class OptimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Optimiser")
    lr: float = Field(0.02, gt=0, le=10, description="SGD learning rate for fine-tuning and retraining.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    weight_decay: float = Field(5e-4, ge=0, lt=1, description="L2 weight decay.")
    batch_size: int = Field(128, ge=1, le=65536, description="Training batch size.")
    schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="Fine-tuning learning rate: cosine decays lr towards 0 over finetune_epochs, so the "
                              "dense network converges (a real plateau); constant keeps lr.")
    retrain_lr: Optional[float] = Field(None, gt=0, le=10, description="Learning rate of every retraining after a "
                                        "prune step (None: lr / 10, the fine-tuning regime).")
    retrain_schedule: Annotated[Literal["constant", "cosine"], NEW_SETTING] = Field(  # hashed only off its default
        "constant",
        description="Retraining learning rate: constant keeps retrain_lr; cosine decays it towards 0 over each "
                    "iteration's retraining budget (a criterion may still stop earlier).")
    retrain_distill: Annotated[float, NEW_SETTING] = Field(
        0.0, ge=0, le=1,
        description="Knowledge distillation in every retraining after a prune step: the loss is (1 - w) x cross "
                    "entropy + w x T^2 x KL(fine-tuned dense network || pruned network) at temperature "
                    "distill_temperature; 0 trains on the labels alone.")
    distill_temperature: Annotated[float, NEW_SETTING] = Field(
        4.0, gt=0, le=100,
        description="Softmax temperature T of retrain_distill (used only when retrain_distill > 0).")

    def retraining(self) -> "OptimConfig":
        """The optimiser settings of retraining: `retrain_lr` under `retrain_schedule`."""
        return self.model_copy(update={"lr": self.retrain_lr or self.lr / 10, "schedule": self.retrain_schedule})

    def lr_at(self, epoch: int, epochs: int) -> float:
        """Learning rate of a 1-based epoch out of `epochs`."""
        if self.schedule == "constant":
            return self.lr
        return self.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(epochs, 1)))
