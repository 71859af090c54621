"""Layer entropy of ReLU states and the EGP budget with water-filling (docs/algorithms.md §3.3)."""

from __future__ import annotations

import math

import torch
from torch import nn

from incop_core.models.relus import relu_inputs, relu_map


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """h(p) in bits, with h(0) = h(1) = 0."""
    p = p.double().clamp(0, 1)
    terms = [torch.where(q > 0, -q * torch.log2(q.clamp_min(1e-300)), torch.zeros_like(q)) for q in (p, 1 - p)]
    return terms[0] + terms[1]


def channel_on_fraction(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Per channel: how many (sample, position) pairs are > 0, and how many pairs there are."""
    positive = (x > 0).double()
    if x.dim() == 4:
        return positive.sum(dim=(0, 2, 3)), x.shape[0] * x.shape[2] * x.shape[3]
    return positive.sum(dim=0), x.shape[0]


def on_fractions(model: nn.Module, probe) -> dict[str, torch.Tensor]:
    """p_c per channel of the ReLU that rectifies each layer (keyed by the layer's weight name), eval mode."""
    first = next(iter(probe()))[0][:2]
    mapping = relu_map(model, first)
    counts: dict[str, list] = {name: [0.0, 0] for name in mapping}

    def add(name: str, x: torch.Tensor) -> None:
        on, total = channel_on_fraction(x.detach())
        counts[name][0] = counts[name][0] + on
        counts[name][1] += total

    was = model.training
    model.eval()
    with torch.no_grad(), relu_inputs(model, list(mapping), add):
        for images, _ in probe():
            model(images)
    model.train(was)
    return {mapping[n]: (on / max(total, 1)).cpu() for n, (on, total) in counts.items()}


def layer_entropies(model: nn.Module, probe) -> dict[str, float]:
    """H_l: mean binary entropy (bits) of layer l's ReLU channels over the probe set."""
    return {layer: float(binary_entropy(p).mean()) for layer, p in on_fractions(model, probe).items()}


def relu_states(model: nn.Module, probe) -> dict[str, dict]:
    """Per layer: channels always ON (the ReLU is the identity there), always OFF, entropy; and whether
    the whole layer is linear (all ON) or dead (all OFF), i.e. removable."""
    report = {}
    for layer, p in on_fractions(model, probe).items():
        on, off = int((p == 1).sum()), int((p == 0).sum())
        report[layer] = {"channels": len(p), "always_on": on, "always_off": off,
                         "entropy": float(binary_entropy(p).mean()),
                         "removable": "linear" if on == len(p) else "dead" if off == len(p) else None}
    return report


def water_fill(budget: float, scores: dict[str, float], survivors: dict[str, int]) -> dict[str, int]:
    """Split `budget` by softmax(scores); a layer offered more than its survivors is zeroed whole and the
    rest is re-allocated among the others, until no allocation exceeds what is left."""
    wait, counts = dict(scores), {}
    while wait and budget > 0:
        top = max(wait.values())
        weights = {n: math.exp(s - top) for n, s in wait.items()}  # softmax, shifted for stability
        total = sum(weights.values())
        offers = {n: budget * w / total for n, w in weights.items()}
        full = [n for n, offer in offers.items() if offer >= survivors[n]]
        if not full:
            counts.update({n: math.floor(offer) for n, offer in offers.items()})
            return counts
        for n in full:
            counts[n] = survivors[n]
            budget -= survivors[n]
            del wait[n]
    return counts
