"""When to stop retraining: a criterion takes an epoch's record and answers stop or go.

The shared types and the registry live in `base`; importing the package registers the built-in plug-ins."""

from incop_core.criteria.base import (  # noqa: F401 (the package's interface)
    ACCURACY, CRITERIA, Criterion, CriterionContext, EpochRecord, FLOW, MAX_EPOCHS, PLATEAU, SETTLED, Verdict,
    consistency_verdict)
from incop_core.criteria import accuracy, fixed, flow, incop  # noqa: F401 (registers the built-ins)
