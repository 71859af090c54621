"""What removed channels still fed forward, folded into the layers that read them.

A dead channel (all-zero filters in every writer) is not zero downstream: it carries a constant
per channel (a BatchNorm shift, a bias), spatially uniform and the same for every input. A reader's
output gets conv(that constant) from it, which is:
  - uniform over space (Linear, 1x1 convs): folded into the reader's bias;
  - not uniform (zero padding makes a 3x3 conv of a constant differ at the borders): folded into
    one dead channel kept as a *carrier*, whose filter in the reader becomes sum_k v_k W[:, k] / v_c,
    so the graph stays plain Conv-BN-ReLU; where no carrier fits, a constant map (layers.py).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ExportFailed
from .coupling import GroupPlan

MIN_CARRIER = 1e-2  # a carrier's constant must be at least this share of the largest one it stands for


def constant_part(x: torch.Tensor, channels: list[int], name: str) -> torch.Tensor:
    """The first sample of `x` with only `channels` kept; they must be the same for every input."""
    only = torch.zeros_like(x)
    only[:, channels] = x[:, channels]
    if float((only - only[:1]).abs().max()) > 1e-6 * (1.0 + float(only.abs().max())):
        raise ExportFailed(f"cannot compact layer {name}: the channels it would lose vary with the input; "
                           f"use `incop export --no-compact`")
    return only[:1]


def output_of(layer: nn.Module, only: torch.Tensor) -> torch.Tensor:
    """What a constant input adds to the layer's output (no bias), per output channel (and position)."""
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            return nn.functional.linear(only, layer.weight)[0]
        return layer._conv_forward(only, layer.weight, None)[0]


def is_uniform(t: torch.Tensor, tolerance: float = 1e-7) -> bool:
    """True for per-channel vectors, and for maps equal to their per-channel mean everywhere."""
    if t.dim() <= 1:
        return True
    spread = (t - t.mean(dim=tuple(range(1, t.dim())), keepdim=True)).abs().max()
    return float(spread) <= tolerance * (1.0 + float(t.abs().max()))


def _values(only: torch.Tensor) -> torch.Tensor:
    """Per-channel constants of a uniform (1, C, H, W) input."""
    return only[0].mean(dim=(1, 2))


def _can_carry(layer: nn.Module, only: torch.Tensor) -> bool:
    return isinstance(layer, nn.Conv2d) and layer.groups == 1 and only.dim() == 4 and is_uniform(only[0])


def choose_carrier(plan: GroupPlan, dead_inputs: dict[nn.Module, torch.Tensor], needing: list[nn.Module]):
    """The dead root channel whose constant is largest (relative) in the weakest of the readers that need one."""
    needing = [r for r in needing if _can_carry(r, dead_inputs[r])]
    if not needing:
        return None

    def strength(root: int) -> float:
        shares = []
        for reader in needing:
            values = _values(dead_inputs[reader]).abs()
            local = plan.local(reader, [root])
            shares.append(float(values[local].min()) / max(float(values.max()), 1e-30))
        return min(shares)

    best = max(plan.dead, key=strength)
    return best if strength(best) >= MIN_CARRIER else None


def fold_into_carrier(layer: nn.Conv2d, values: torch.Tensor, lost: list[int], carrier: int) -> None:
    """Give the carrier input channel the lost channels' filters, weighted by their constants."""
    with torch.no_grad():
        w = layer.weight
        w[:, carrier] += (w[:, lost] * values[lost].view(1, -1, 1, 1)).sum(dim=1) / values[carrier]


def fold_group(plan: GroupPlan, inputs: dict, names: dict, pending: dict, folded: dict) -> None:
    """Choose the group's carrier and fold what its removed channels fed each reader.

    Carrier folds change the readers' weights now; bias and map folds are added to `pending`
    (reader -> full-size output shift) to be applied after the channels are removed.
    """
    dead = {r: constant_part(inputs[r], plan.local(r, plan.dead), names[r]) for r in plan.readers}
    needing = [r for r in plan.readers if not is_uniform(output_of(r, dead[r]))]
    plan.carrier = choose_carrier(plan, dead, needing)
    for reader in plan.readers:
        lost = plan.local(reader, plan.removed())
        only = torch.zeros_like(dead[reader])
        only[:, lost] = dead[reader][:, lost]
        shift = output_of(reader, only)
        if float(shift.abs().max()) == 0.0:
            continue
        if plan.carrier is not None and not is_uniform(shift) and _can_carry(reader, dead[reader]):
            carrier = plan.local(reader, [plan.carrier])[0]
            fold_into_carrier(reader, _values(dead[reader]), lost, carrier)
            folded[names[reader]] = "carrier channel"
        else:
            pending[reader] = pending.get(reader, 0) + shift
