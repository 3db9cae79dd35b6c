"""SNN + clinical: the SNN on the concatenated omics with the clinical covariates appended."""

from __future__ import annotations

from typing import Any

from mmsurv.models._registry import register_model
from mmsurv.models.snn import SNN


class SNNClinical(SNN):
    """SNN whose last omics block is the encoded clinical covariates (training/clinical.py)."""

    modalities = frozenset({"omic", "clinical"})


@register_model
def snn_clinical(**kwargs: Any) -> SNNClinical:
    """SNN on genomics + clinical covariates (one more block in the concatenated vector)."""
    return SNNClinical(**kwargs)
