"""Output consistency: mean KL(p_dense || p_t) of the softmax outputs on the probe set, in nats."""

from __future__ import annotations

import torch.nn.functional as F

from incop_core.consistency.distances.base import DISTANCES, LOGITS, Snapshot


@DISTANCES.register("kl", (LOGITS,), "mean KL(dense || current) of the softmax outputs on the probe set (nats)")
def kl(current: Snapshot, reference: Snapshot) -> float:
    dense, ours = F.log_softmax(reference.logits.double(), 1), F.log_softmax(current.logits.double(), 1)
    return float(F.kl_div(ours, dense, log_target=True, reduction="batchmean"))
