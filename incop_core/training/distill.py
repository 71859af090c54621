"""Knowledge distillation for retraining: the fine-tuned dense network teaches its pruned copy (Hinton et al.'s
soft targets), so retraining recovers what the labels alone do not say about the dense network's answers."""

from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from incop_core.training.optim import OptimConfig


class Distiller:
    """The loss of one retraining step: (1 - w) x cross entropy + w x T^2 x KL(teacher || student) at temperature T."""

    def __init__(self, teacher: nn.Module, weight: float, temperature: float) -> None:
        self.teacher, self.weight, self.temperature = teacher, weight, temperature

    def loss(self, logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.teacher(images).float()
        t = self.temperature
        soft = F.kl_div(F.log_softmax(logits.float() / t, dim=1), F.log_softmax(target / t, dim=1),
                        reduction="batchmean", log_target=True) * t * t
        return (1 - self.weight) * F.cross_entropy(logits, labels) + self.weight * soft


def distiller(model: nn.Module, dense: dict, optim: OptimConfig) -> Optional[Distiller]:
    """A frozen copy of `model` holding the fine-tuned dense weights, in eval mode; None when retrain_distill is 0."""
    if optim.retrain_distill <= 0:
        return None
    teacher = copy.deepcopy(model)
    teacher.load_state_dict(dense)
    teacher.eval().requires_grad_(False)
    return Distiller(teacher, optim.retrain_distill, optim.distill_temperature)
