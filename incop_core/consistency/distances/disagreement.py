"""Output consistency: the share of probe images whose top-1 class differs from the dense network's."""

from __future__ import annotations

import torch

from incop_core.consistency.distances.base import DISTANCES, LOGITS, Snapshot


def agreement(current: Snapshot, reference: Snapshot) -> torch.Tensor:
    """Per probe image: True where the top-1 class is the dense network's."""
    return current.logits.argmax(1) == reference.logits.argmax(1)


@DISTANCES.register("disagreement", (LOGITS,), "share of probe images whose top-1 class differs from the dense "
                                               "network's",
                    counted=True)
def disagreement(current: Snapshot, reference: Snapshot) -> float:
    return float((~agreement(current, reference)).double().mean())
