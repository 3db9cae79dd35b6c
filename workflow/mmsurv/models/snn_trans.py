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

from mmsurv.models._layers import GatedAttention, ModelOutput, SNNBlock, SurvModel
from mmsurv.models._registry import register_model

__all__ = ["SNNTrans", "snn_trans"]


class SNNTrans(SurvModel):
    """Family SNNs (size→256→256) → 2-layer Transformer (8 heads) → gated pooling → Linear+ReLU."""

    modalities = frozenset({"omic"})

    def __init__(self, *, d: int = 256, n_layers: int = 2, n_heads: int = 8, **kwargs: Any) -> None:
        kwargs.setdefault("dropout", 0.25)
        super().__init__(**kwargs)
        # MCAT "small" omic size: two SNN blocks per family (AlphaDropout 0.25 = default dropout).
        self.sig_networks = nn.ModuleList(
            nn.Sequential(SNNBlock(size, d, self.dropout), SNNBlock(d, d, self.dropout))
            for size in self.omic_sizes
        )
        # MCAT's encoder layer: post-norm, feed-forward 2·d (512), ReLU, dropout = model dropout.
        layer = nn.TransformerEncoderLayer(
            d_model=d,
            nhead=n_heads,
            dim_feedforward=2 * d,
            dropout=self.dropout,
            activation="relu",
            batch_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.attention = GatedAttention(d, d, dropout=self.dropout)
        self.rho = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(self.dropout))
        self.classifier = nn.Linear(d, self.n_bins)

    def forward(
        self, path: torch.Tensor | None = None, omics: Sequence[torch.Tensor] | None = None
    ) -> ModelOutput:
        """Predict one case's discrete hazards from its gene families (the bag is ignored)."""
        self.check_inputs(path, omics)
        omics = cast(Sequence[torch.Tensor], omics)
        tokens = torch.stack([net(x) for net, x in zip(self.sig_networks, omics, strict=True)])
        h = self.transformer(tokens.unsqueeze(0)).squeeze(0)  # (G, d)
        pooled, _ = self.attention(h)  # (1, d)
        return ModelOutput.from_logits(self.classifier(self.rho(pooled)))


@register_model
def snn_trans(**kwargs: Any) -> SNNTrans:
    """SNNTrans baseline: MCAT's genomic branch alone (genomics only)."""
    return SNNTrans(**kwargs)
