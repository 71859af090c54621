"""When to stop retraining: a criterion answers stop or go after each epoch (types and registry in `base`)."""

from incop_core.criteria.base import (  # noqa: F401 (the package's interface)
    ACCURACY, CRITERIA, Criterion, CriterionContext, CriterionSettings, EpochRecord, FLOW, MAX_EPOCHS, PLATEAU,
    SETTLED, Verdict, consistency_verdict)
from incop_core.criteria import accuracy, fixed, flow, incop  # noqa: F401 (registers the built-ins)
