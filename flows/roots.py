"""Where a run may read and write on the worker: the path parameters of a run started from the UI or the API (runs
directory, registry, storage, data root, weights, signing key) must lie under a configured root.

Roots are INCOP_ALLOWED_ROOTS (paths separated by ':'), else INCOP_HOME; in a deployment run with neither set, the
worker's working directory (where `incop serve` started) and the packaged FashionMNIST directory. A local
`incop pipeline` with neither set is the user's own shell and may use any path. Links are resolved first, so a link
inside a root that points outside it is outside.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from incop_core.datasets.sources import DEFAULT_FASHION_ROOT

ROOTS_ENV, HOME_ENV = "INCOP_ALLOWED_ROOTS", "INCOP_HOME"


def allowed_roots(deployment_run: bool) -> Optional[list[Path]]:
    """The configured roots, resolved; None when every path is allowed."""
    listed = os.environ.get(ROOTS_ENV) or os.environ.get(HOME_ENV)
    if listed:
        return [Path(p).resolve() for p in listed.split(os.pathsep) if p]
    if deployment_run:
        return [Path.cwd().resolve(), Path(DEFAULT_FASHION_ROOT).resolve()]
    return None


def inside(location: str, roots: Optional[list[Path]]) -> bool:
    """Whether a local path (a URL is its backend's business) resolves under one of `roots`."""
    if roots is None or "://" in location:
        return True
    resolved = Path(location).expanduser().resolve()
    return any(resolved == root or root in resolved.parents for root in roots)


def path_fields(params) -> dict[str, Optional[str]]:
    run = params.run
    return {"runs_dir": params.runs_dir, "registry": params.registry, "storage": params.storage,
            "run.data.root": run.data.root, "run.model.weights": run.model.weights, "signing_key": params.signing_key}


def outside_roots(params, deployment_run: bool) -> Optional[str]:
    """One sentence naming every path parameter outside the roots, or None."""
    roots = allowed_roots(deployment_run)
    bad = [f"{field} {value}" for field, value in path_fields(params).items() if value and not inside(value, roots)]
    if not bad:
        return None
    where = ", ".join(str(r) for r in roots or [])
    return (f"{'; '.join(bad)} {'is' if len(bad) == 1 else 'are'} outside the locations this worker allows ({where}): "
            f"choose a path under one of them, or widen {ROOTS_ENV} where the worker runs")
