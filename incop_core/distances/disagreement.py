"""Output consistency: the share of probe images whose top-1 class differs from the dense network's."""

from __future__ import annotations

from . import DISTANCES, LOGITS, Snapshot


@DISTANCES.register("disagreement", (LOGITS,), "share of probe images whose top-1 class differs from the dense network's")
def disagreement(current: Snapshot, reference: Snapshot) -> float:
    return float((current.logits.argmax(1) != reference.logits.argmax(1)).double().mean())
