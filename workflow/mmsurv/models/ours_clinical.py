"""Ours + clinical: the encoded clinical covariates as one more genomic token."""

from __future__ import annotations

from typing import Any

from mmsurv.models._registry import register_model
from mmsurv.models.ours import Ours


class OursClinical(Ours):
    """`Ours` whose last omics block is the encoded clinical covariates (training/clinical.py).

    The block gets its own SNN like a gene family, so the genomic side has G + 1 tokens; the
    pathology side keeps C_p = G groups (the number of gene families), as in `ours`.
    Withholding the genomics (omics=None) withholds the clinical token with them.
    """

    modalities = frozenset({"path", "omic", "clinical"})

    def __init__(self, *, n_groups: int | None = None, **kwargs: Any) -> None:
        omic_sizes = kwargs.get("omic_sizes") or []
        if n_groups is None and len(omic_sizes) >= 2:
            n_groups = len(omic_sizes) - 1  # the gene families, without the clinical block
        super().__init__(n_groups=n_groups, **kwargs)


@register_model
def ours_clinical(**kwargs: Any) -> OursClinical:
    """Full model (SimMe + BDCA + OT) with the clinical covariates as an extra genomic token."""
    return OursClinical(**kwargs)
