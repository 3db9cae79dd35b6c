"""MCAT (pathology + genomics): genomic-guided co-attention, then one transformer per modality.

Chen et al., ICCV 2021; follows github mahmoodlab/MCAT `models/model_coattn.py` (`MCAT_Surv`,
"small" sizes, concat fusion).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from mmsurv.models._layers import GatedAttention, ModelOutput, SNNBlock, SurvModel
from mmsurv.models._registry import register_model


class TokenSetHead(nn.Module):
    """MCAT's per-modality head: 2-layer transformer → gated attention pooling → rho."""

    def __init__(self, d: int, n_heads: int, n_layers: int, dropout: float) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=d,
            nhead=n_heads,
            dim_feedforward=2 * d,  # MCAT: 512 for d = 256
            dropout=dropout,
            activation="relu",
            batch_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.attention = GatedAttention(d, d, dropout=dropout)
        self.rho = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(n, d) tokens → (1, d) representation."""
        h = self.transformer(tokens.unsqueeze(0)).squeeze(0)
        pooled, _ = self.attention(h)
        return self.rho(pooled)


class MCAT(SurvModel):
    """Gene-family tokens query the patches (G×N co-attention); two heads; concat → logits."""

    modalities = frozenset({"path", "omic"})

    def __init__(self, *, d: int = 256, n_heads: int = 8, n_layers: int = 2, **kwargs: Any) -> None:
        kwargs.setdefault("dropout", 0.25)
        super().__init__(**kwargs)
        self.d = d
        self.wsi_net = nn.Sequential(
            nn.Linear(self.path_dim, d), nn.ReLU(), nn.Dropout(self.dropout)
        )
        # One SNN per family, MCAT "small": SNN(size → 256) → SNN(256 → 256).
        self.sig_networks = nn.ModuleList(
            nn.Sequential(SNNBlock(size, d), SNNBlock(d, d, dropout=0.25))
            for size in self.omic_sizes
        )
        self.coattn = nn.MultiheadAttention(d, num_heads=1, batch_first=True)
        self.path_head = TokenSetHead(d, n_heads, n_layers, self.dropout)
        self.omic_head = TokenSetHead(d, n_heads, n_layers, self.dropout)
        self.mm = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU())
        self.classifier = nn.Linear(d, self.n_bins)

    def embed(
        self, path: torch.Tensor, omics: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch tokens (N, d) and one token per gene family (G, d)."""
        h_path = self.wsi_net(path)
        h_omic = torch.stack([net(x) for net, x in zip(self.sig_networks, omics, strict=True)])
        return h_path, h_omic

    def coattend(
        self, h_omic: torch.Tensor, h_path: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Genomic-guided co-attention: G family queries over N patches → (G, d), weights (G, N)."""
        out, weights = self.coattn(
            h_omic.unsqueeze(0), h_path.unsqueeze(0), h_path.unsqueeze(0), need_weights=True
        )
        return out.squeeze(0), weights.squeeze(0)

    def forward(
        self, path: torch.Tensor | None = None, omics: Sequence[torch.Tensor] | None = None
    ) -> ModelOutput:
        """Predict one case's discrete hazards from its patch bag and gene-family vectors."""
        self.check_inputs(path, omics)
        h_path, h_omic = self.embed(cast(torch.Tensor, path), cast(Sequence[torch.Tensor], omics))
        h_coattn, _ = self.coattend(h_omic, h_path)
        h = torch.cat([self.path_head(h_coattn), self.omic_head(h_omic)], dim=1)  # (1, 2d)
        return ModelOutput.from_logits(self.classifier(self.mm(h)))


@register_model
def mcat(**kwargs: Any) -> MCAT:
    """MCAT baseline (pathology + genomics, co-attention)."""
    return MCAT(**kwargs)
