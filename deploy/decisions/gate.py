"""The promotion gate: a run's published model moves the `stable` channel only when it is no worse than stable.

The pipeline publishes every run to the `candidate` channel. It then pulls the current stable version the way a
device does (signature, expiry and sha256 checked), and compares the two on THIS run's validation split, which both
see the same way only when their input specs match:
- same input: the same normalisation (mean, std) and the same input shape;
- accuracy: the candidate's validation accuracy is not lower than stable's by more than `tolerance_pp`;
- latency: the candidate's p50 on the target profile is not above stable's by more than `slack` (both timed
  interleaved in one process; a shared CPU moves p50s by a few per cent).
A run whose data or model differ from the served parameters is never promoted automatically: its validation split
or its network is not the one the channel's users asked for. The verdict is one sentence either way.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

STABLE, CANDIDATE = "stable", "candidate"
UNSERVED = ("run.data.", "run.model.")  # parameter prefixes whose change makes a run ineligible for promotion


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str  # one sentence: why it was or was not promoted
    figures: dict = field(default_factory=dict)  # validation accuracies and p50s of both, when compared


def unserved(changed: Sequence[str]) -> list[str]:
    """The changed parameters (dotted keys) that bar automatic promotion."""
    return [key for key in changed if key.startswith(UNSERVED)]


def input_of(path: Path) -> list:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [d if isinstance(d, int) else None for d in session.get_inputs()[0].shape[1:]]


def judge(candidate: dict, stable: Optional[dict], tolerance_pp: float, slack: float, profile: str) -> Verdict:
    """Decide from measured figures. `candidate`/`stable`: {"spec", "input", "val_accuracy", "p50_ms", "version"}."""
    if stable is None:
        return Verdict(True, f"promoted to {STABLE}: the channel had no version yet")
    figures = {"candidate": candidate, "stable": stable}
    v = stable["version"]
    if candidate["spec"] != stable["spec"] or candidate["input"] != stable["input"]:
        return Verdict(False, f"kept on {CANDIDATE}: its input (normalisation {candidate['spec']}, shape "
                              f"{candidate['input']}) differs from {STABLE} v{v}'s ({stable['spec']}, "
                              f"{stable['input']}), so devices would feed it wrong images; promote it by hand if that "
                              "is intended", figures)
    drop = 100 * (stable["val_accuracy"] - candidate["val_accuracy"])
    if drop > tolerance_pp:
        return Verdict(False, f"kept on {CANDIDATE}: validation accuracy {100 * candidate['val_accuracy']:.2f} % is "
                              f"{drop:.2f} pp below {STABLE} v{v}'s {100 * stable['val_accuracy']:.2f} % on this run's "
                              f"validation split (tolerance {tolerance_pp:g} pp)", figures)
    if candidate["p50_ms"] > stable["p50_ms"] * (1 + slack):
        return Verdict(False, f"kept on {CANDIDATE}: p50 {candidate['p50_ms']:.4g} ms on {profile} is slower than "
                              f"{STABLE} v{v}'s {stable['p50_ms']:.4g} ms by more than {100 * slack:g} %", figures)
    return Verdict(True, f"promoted to {STABLE}: validation {100 * candidate['val_accuracy']:.2f} % vs "
                         f"{100 * stable['val_accuracy']:.2f} % and p50 {candidate['p50_ms']:.4g} ms vs "
                         f"{stable['p50_ms']:.4g} ms on {profile} against {STABLE} v{v}", figures)


def measure(candidate_path: Path, candidate_spec: dict, stable_path: Path, stable_manifest: dict,
            val_images: np.ndarray, val_labels: np.ndarray, profile: str, rounds: int) -> tuple[dict, dict]:
    """Both models' figures on the same validation images and the same profile, timed side by side."""
    from deploy.measure.timing import benchmark
    from deploy.measure.runtime import logits

    timed = benchmark({"stable": stable_path, "candidate": candidate_path}, [profile], baseline="stable",
                      rounds=max(3, rounds))["profiles"][profile]["models"]
    out = {}
    for name, path, spec, version in (("candidate", candidate_path, candidate_spec, None),
                                      ("stable", stable_path, stable_manifest.get("input_spec"),
                                       stable_manifest["version"])):
        accuracy = float((logits(path, val_images).argmax(1) == val_labels).mean())
        out[name] = {"spec": _spec(spec), "input": input_of(path), "val_accuracy": accuracy,
                     "p50_ms": timed[name]["p50_ms"], "version": version}
    return out["candidate"], out["stable"]


def _spec(spec: Optional[dict]) -> Optional[dict]:
    return None if spec is None else {"mean": [float(x) for x in spec.get("mean", [])],
                                      "std": [float(x) for x in spec.get("std", [])]}


def pull_stable(registry: str, name: str, public_key: Any, into: Path) -> Optional[tuple[Path, dict]]:
    """The stable channel's model file and manifest, verified as a device would; None when there is no stable yet."""
    from deploy.edge.pointers import channel_rel
    from deploy.edge.pull import pull
    from deploy.edge.store import Store

    if not Store(registry).exists(channel_rel(name, STABLE)):
        return None
    result = pull(registry, name, into, public_key=public_key, channel=STABLE)
    current = Path(result["path"])
    manifest = result["manifest"]
    return current / manifest["model_file"], manifest


def gate(registry: str, name: str, published: dict, candidate_path: Path, candidate_spec: dict,
         val: Callable[[], tuple[np.ndarray, np.ndarray]],
         profile: str, rounds: int, tolerance_pp: float, slack: float, changed: Sequence[str],
         public_key: Any = None) -> Verdict:
    """Compare the just-published candidate with stable and say whether it should be promoted. `val` gives the
    validation images and labels; it is called only when there is a stable version to compare with."""
    barred = unserved(changed)
    if barred:
        return Verdict(False, f"kept on {CANDIDATE}: this run changed {', '.join(barred)} from the served parameters, "
                              f"so it never promotes itself; `incop promote {name} {published['version']} --channel "
                              f"{STABLE}` if it should ship")
    with tempfile.TemporaryDirectory(prefix="incop-gate-") as scratch:
        found = pull_stable(registry, name, public_key, Path(scratch) / "device")
        if found is None:
            return judge({}, None, tolerance_pp, slack, profile)
        images, labels = val()
        candidate, stable = measure(candidate_path, candidate_spec, found[0], found[1], images, labels, profile,
                                    rounds)
    return judge({**candidate, "version": published["version"]}, stable, tolerance_pp, slack, profile)
