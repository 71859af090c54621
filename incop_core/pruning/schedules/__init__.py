"""How much to prune: a schedule answers, given the current state, how many weights per group.

The shared types and the registry live in `base`; importing the package registers the built-in plug-ins."""

from incop_core.pruning.schedules.base import (  # noqa: F401 (the package's interface)
    PruneState, SCHEDULES, Schedule)
from incop_core.pruning.schedules import egp, lth, sap  # noqa: F401 (registers the built-ins)
