"""The pruning mask as a value object: validated, saved with a sparsity report, only ever shrinking."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import torch
from torch import nn

from incop_core.foundations.errors import IncopError
from incop_core.foundations.fileio import write_bytes_atomic, write_json_atomic
from incop_core.models.layers import prunable


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every Conv2d and Linear weight with dim > 1, in named_modules() order (docs/algorithms.md §1)."""
    return {
        f"{name}.weight": module.weight
        for name, module in model.named_modules()
        if prunable(module)
    }


def alive_filters(keep: torch.Tensor) -> torch.Tensor:
    """Output channels with any surviving weight."""
    return keep.reshape(keep.shape[0], -1).any(dim=1)


def coupled_norms(model: nn.Module) -> dict[str, nn.Module]:
    """Conv weight name -> the BatchNorm that normalises exactly that conv's output and nothing else (traced with
    torch.fx; {} when the model does not trace, which only costs compaction a carrier channel)."""
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:
        return {}
    modules, found = dict(model.named_modules()), {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.Conv2d) or len(node.users) != 1:
            continue
        user = next(iter(node.users))
        norm = modules.get(user.target) if user.op == "call_module" else None
        if isinstance(norm, nn.BatchNorm2d) and norm.affine and norm.num_features == modules[node.target].out_channels:
            found[f"{node.target}.weight"] = norm
    return found


def dead_filter_norms(model: nn.Module, mask: "Mask") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(BatchNorm weight or bias, keep vector) for every conv whose BatchNorm is coupled: a channel whose filter is
    pruned whole gets a zero scale and shift, so it outputs exactly 0 in train and eval mode instead of a constant
    (a constant would have to be carried through compaction by an extra channel, costing latency)."""
    pairs = []
    for name, norm in coupled_norms(model).items():
        keep = alive_filters(mask.tensors[name])
        pairs += [(norm.weight, keep), (norm.bias, keep)]
    return pairs


@dataclass(frozen=True)
class Mask:
    """One boolean tensor per prunable weight; True keeps the weight."""

    tensors: Mapping[str, torch.Tensor]

    def __post_init__(self) -> None:
        clean = {}
        for name, tensor in self.tensors.items():
            if tensor.dtype != torch.bool:
                if not torch.all((tensor == 0) | (tensor == 1)):
                    raise IncopError(f"mask for {name} holds values other than 0 and 1; rebuild the mask")
                tensor = tensor != 0
            clean[name] = tensor.detach().to("cpu")
        object.__setattr__(self, "tensors", clean)

    @classmethod
    def dense(cls, model: nn.Module) -> "Mask":
        return cls({name: torch.ones_like(w, dtype=torch.bool, device="cpu")
                    for name, w in prunable_weights(model).items()})

    def mismatch(self, model: nn.Module) -> Optional[str]:
        """What keeps this mask from fitting `model` (one tensor of the weight's shape per prunable weight), or None."""
        weights = prunable_weights(model)
        if set(weights) != set(self.tensors):
            return f"layers differ: {sorted(set(weights) ^ set(self.tensors))[:3]}"
        for name, weight in weights.items():
            if tuple(weight.shape) != tuple(self.tensors[name].shape):
                return (f"mask for {name} has shape {tuple(self.tensors[name].shape)} but the weight has "
                        f"{tuple(weight.shape)}")
        return None

    def check_matches(self, model: nn.Module) -> None:
        """Raise unless this mask has exactly one tensor of the right shape per prunable weight."""
        problem = self.mismatch(model)
        if problem:
            raise IncopError(f"mask does not match the model ({problem}); use the mask saved with this run")

    def remaining(self) -> dict[str, int]:
        return {name: int(t.sum()) for name, t in self.tensors.items()}

    def total(self) -> int:
        return sum(t.numel() for t in self.tensors.values())

    def remaining_total(self) -> int:
        return sum(self.remaining().values())

    def is_subset_of(self, other: "Mask") -> bool:
        """True when every weight this mask keeps is kept by `other` too."""
        return self.tensors.keys() == other.tensors.keys() and all(
            not torch.any(self.tensors[n] & ~other.tensors[n]) for n in self.tensors
        )

    def apply_(self, model: nn.Module, norms: bool = False) -> None:
        """Zero the masked weights of `model` in place; with `norms`, also the BatchNorm scale and shift of every
        channel whose filter is pruned whole (structured scopes)."""
        with torch.no_grad():
            for name, weight in prunable_weights(model).items():
                weight.mul_(self.tensors[name].to(device=weight.device, dtype=weight.dtype))
            for param, keep in dead_filter_norms(model, self) if norms else []:
                param.mul_(keep.to(device=param.device, dtype=param.dtype))

    def sparsity_report(self) -> dict:
        layers = {
            name: {"total": t.numel(), "remaining": int(t.sum()), "sparsity": 1.0 - int(t.sum()) / t.numel()}
            for name, t in self.tensors.items()
        }
        remaining, total = self.remaining_total(), self.total()
        return {"total": total, "remaining": remaining, "sparsity": 1.0 - remaining / max(total, 1), "layers": layers}

    def save(self, path: Path) -> None:
        """Save the mask and, beside it, `<name>.json` with its per-layer sparsity report."""
        path = Path(path)
        buffer = io.BytesIO()
        torch.save({name: t.clone() for name, t in self.tensors.items()}, buffer)
        write_bytes_atomic(path, buffer.getvalue())
        write_json_atomic(path.with_suffix(".json"), self.sparsity_report())

    @classmethod
    def load(cls, path: Path, fix: Optional[str] = None) -> "Mask":
        """A saved mask; an unreadable one is a sentence ending in `fix` (default: delete its iteration folder)."""
        fix = fix or (f"delete {Path(path).parent} and re-run `incop prune` with the same settings to recompute that "
                      "iteration")
        try:
            tensors = torch.load(Path(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise IncopError(f"mask file {path} is unreadable ({type(exc).__name__}); {fix}") from exc
        if not isinstance(tensors, Mapping) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
            raise IncopError(f"mask file {path} holds no mask (a name -> tensor dict); {fix}")
        return cls(tensors)
