"""Target profiles for onnxruntime CPU benchmarks, and the check that a model's input fits one."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ProfileError


@dataclass(frozen=True)
class Profile:
    name: str
    threads: int            # intra-op threads (inter-op is always 1, sequential execution)
    batch: int
    rounds: int             # default interleaving: rounds x per_round timed runs per model
    per_round: int
    optimization: str = "all"       # onnxruntime graph optimisation level
    denormal_as_zero: bool = True
    description: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES = {p.name: p for p in (
    Profile("edge-1t", 1, 1, 12, 10, description="one intra-op thread, batch 1: a small edge CPU"),
    Profile("cpu-2t", 2, 1, 12, 10, description="two intra-op threads, batch 1: a desktop/server CPU, latency"),
    Profile("throughput", 2, 32, 6, 3, description="two intra-op threads, batch 32: offline throughput"),
)}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return PROFILES[name]


def input_shape(spec: dict, profile: Profile, path: Path) -> tuple[int, ...]:
    """The NCHW float32 input shape to feed `path` under `profile`; ProfileError when it does not fit."""
    shape, name = spec["shape"], Path(path).name
    if spec["dtype"] != "float32" or len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
        raise ProfileError(f"{name} takes a {spec['dtype']} input of shape {shape}, but profiles feed float32 NCHW "
                           f"images of a fixed size; use a model exported with `incop export`")
    batch = shape[0]
    if isinstance(batch, int) and batch != profile.batch:
        raise ProfileError(f"{name} has a fixed batch size of {batch} but profile {profile.name} runs batch "
                           f"{profile.batch}; re-export it with a dynamic batch axis or choose another profile")
    return (profile.batch, *shape[1:])
