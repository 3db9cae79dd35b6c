"""PORPOISE + clinical: the omic SNN's concatenated vector ends with the clinical covariates."""

from __future__ import annotations

from typing import Any

from mmsurv.models._registry import register_model
from mmsurv.models.porpoise import Porpoise


class PorpoiseClinical(Porpoise):
    """PORPOISE whose last omics block is the encoded clinical covariates (training/clinical.py).

    Withholding the genomics (omics=None) withholds the clinical block with them.
    """

    modalities = frozenset({"path", "omic", "clinical"})


@register_model
def porpoise_clinical(**kwargs: Any) -> PorpoiseClinical:
    """PORPOISE-MMF on pathology + genomics + clinical covariates."""
    return PorpoiseClinical(**kwargs)
