"""cox_clinical: ridge Cox on clinical covariates (default age and sex), the clinical floor.

Inputs: the clinical table's columns named by `training.clinical_covariates`; text columns are
one-hot encoded (a missing value is its own level), numeric ones standardised (a missing value
becomes the training median), all with the training cases' statistics.
"""

from __future__ import annotations

from mmsurv.models._linear import LinearFloor
from mmsurv.models._registry import register_floor


@register_floor
def cox_clinical(*, alpha: float = 1.0) -> LinearFloor:
    """scikit-survival CoxPH with a small fixed ridge penalty `alpha` on the covariates."""
    return LinearFloor(name="cox_clinical", features="clinical", penalty="ridge", alpha=alpha)
