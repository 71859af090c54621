"""Checks at flow start: what the parameter schema cannot say, named by the form's fields (run.prune.schedule.p),
found in seconds instead of an hour into the run. Plain Python: the flow calls `preflight(params)` first."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

from incop_core.imp.config import OWN_ROOT
from incop_core.datasets.sources import DEFAULT_FASHION_ROOT
from incop_core.foundations.errors import ConfigError

from .params import PipelineParams
from .roots import outside_roots

Check = Callable[[PipelineParams], Optional[str]]


def preflight(params: PipelineParams) -> None:
    """Raise one ConfigError listing every problem found; return quietly when there is none."""
    problems = [problem for check in CHECKS if (problem := check(params))]
    if problems:
        raise ConfigError("the parameters cannot work: " + "; ".join(problems))


def sap_orders(params: PipelineParams) -> Optional[str]:
    schedule = params.run.prune.schedule
    if schedule.kind == "sap" and schedule.p >= schedule.q:
        return (f"run.prune.schedule.p ({schedule.p}) must be below run.prune.schedule.q ({schedule.q}): "
                f"the PQ index needs p < q")
    return None


def data_root(params: PipelineParams) -> Optional[str]:
    data = params.run.data
    if data.name not in OWN_ROOT and not data.root:
        return f"run.data.root is empty: data set {data.name} needs the directory holding its files"
    root = Path(data.root or (DEFAULT_FASHION_ROOT if data.name == "fashion-mnist" else ""))
    if data.name == "synthetic" or root.is_dir() or (data.download and data.name in ("mnist", "cifar10")):
        return None
    return (f"run.data.root {root} is not a directory on this machine: set run.data.root to where {data.name} lies"
            + (" (fashion-mnist: apt-get install dataset-fashion-mnist)" if data.name == "fashion-mnist" else ""))


def publish_profile(params: PipelineParams) -> Optional[str]:
    if params.publish_profile not in params.profiles:
        return (f"publish_profile {params.publish_profile} is not among profiles {list(params.profiles)}: "
                f"add it to profiles or choose one of them")
    return None


def signing_key(params: PipelineParams) -> Optional[str]:
    key = params.signing_key
    if key and not (Path(key).is_file() and os.access(key, os.R_OK)):
        return (f"signing_key {key} is not a readable file: create one with `incop keys generate` or clear "
                f"signing_key to publish unsigned")
    return None


def writable(field: str) -> Check:
    """The check that the local directory in `field` (a URL is left to its backend) can be created and written."""
    def check(params: PipelineParams) -> Optional[str]:
        location = getattr(params, field)
        if not location or "://" in location:
            return None
        folder = _nearest_existing(Path(location))
        if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
            return None
        what = "is not a directory" if not folder.is_dir() else "is not writable by this user"
        return f"{field} {location} cannot be written ({folder} {what}): choose a writable directory for {field}"
    return check


def _nearest_existing(path: Path) -> Path:
    """`path` or its nearest existing parent (what mkdir -p would start from)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def path_roots(params: PipelineParams) -> Optional[str]:
    from prefect.runtime import deployment

    return outside_roots(params, deployment_run=bool(deployment.id))


CHECKS: tuple[Check, ...] = (path_roots, sap_orders, data_root, publish_profile, signing_key,
                             writable("runs_dir"), writable("registry"), writable("storage"))
