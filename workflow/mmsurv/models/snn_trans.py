"""SNNTrans (genomics only): one SNN per gene family → Transformer over the family tokens.

This is the genomic half of MCAT (`MCAT_Surv` in mahmoodlab/MCAT `models/model_coattn.py`, also
in PORPOISE's copy): `sig_networks` → `omic_transformer` → `omic_attention_head` → `omic_rho`,
followed by a linear survival head instead of MCAT's fusion layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from mmsurv.models._layers import FamilyNetworks, ModelOutput, SurvModel, TokenSetHead
from mmsurv.models._registry import register_model

__all__ = ["SNNTrans", "snn_trans"]


class SNNTrans(SurvModel):
    """Family SNNs (size→256→256) → 2-layer Transformer (8 heads) → gated pooling → Linear+ReLU."""

    modalities = frozenset({"omic"})

    def __init__(self, *, d: int = 256, n_layers: int = 2, n_heads: int = 8, **kwargs: Any) -> None:
        kwargs.setdefault("dropout", 0.25)
        super().__init__(**kwargs)
        # MCAT "small": two SNN blocks per family, then MCAT's omic head (post-norm Transformer,
        # feed-forward 2·d, gated attention pooling, Linear + ReLU).
        self.sig_networks = FamilyNetworks(self.omic_sizes, d)
        self.head = TokenSetHead(d, n_heads, n_layers, self.dropout)
        self.classifier = nn.Linear(d, self.n_bins)

    def forward(
        self, path: torch.Tensor | None = None, omics: Sequence[torch.Tensor] | None = None
    ) -> ModelOutput:
        """Predict one case's discrete hazards from its gene families (the bag is ignored)."""
        self.check_inputs(path, omics)
        tokens = self.sig_networks(cast(Sequence[torch.Tensor], omics))  # (G, d)
        return ModelOutput.from_logits(self.classifier(self.head(tokens)))


@register_model
def snn_trans(**kwargs: Any) -> SNNTrans:
    """SNNTrans baseline: MCAT's genomic branch alone (genomics only)."""
    return SNNTrans(**kwargs)
