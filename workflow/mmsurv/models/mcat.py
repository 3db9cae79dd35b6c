"""MCAT (pathology + genomics): genomic-guided co-attention, then one transformer per modality.

Chen et al., ICCV 2021; follows github mahmoodlab/MCAT `models/model_coattn.py` (`MCAT_Surv`,
"small" sizes, concat fusion).

Missing modality (models/_missing.py): a withheld bag is one learned (1, d) patch token after
`wsi_net` (the families then co-attend to it alone); withheld omics are G learned family tokens
in place of the family SNNs' outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mmsurv.models._layers import FamilyNetworks, ModelOutput, SurvModel, TokenSetHead
from mmsurv.models._missing import missing_token
from mmsurv.models._registry import register_model


class MCAT(SurvModel):
    """Gene-family tokens query the patches (G×N co-attention); two heads; concat → logits."""

    modalities = frozenset({"path", "omic"})
    # The family SNNs and the genomic head over their tokens (snn_trans is this branch alone).
    omic_modules = ("sig_networks", "omic_head")
    accepts_missing = True
    patch_score_caption = (
        "Genomics-guided co-attention: family g's token (the query) attends over the patches; "
        "panel family g is that softmax weight per patch, which sums to 1 over the bag."
    )

    def __init__(self, *, d: int = 256, n_heads: int = 8, n_layers: int = 2, **kwargs: Any) -> None:
        kwargs.setdefault("dropout", 0.25)
        super().__init__(**kwargs)
        self.d = d
        self.wsi_net = nn.Sequential(
            nn.Linear(self.path_dim, d), nn.ReLU(), nn.Dropout(self.dropout)
        )
        # One SNN per family, MCAT "small": SNN(size → 256) → SNN(256 → 256).
        self.sig_networks = FamilyNetworks(self.omic_sizes, d)
        self.coattn = nn.MultiheadAttention(d, num_heads=1, batch_first=True)
        self.path_head = TokenSetHead(d, n_heads, n_layers, self.dropout)
        self.omic_head = TokenSetHead(d, n_heads, n_layers, self.dropout)
        self.mm = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU())
        self.classifier = nn.Linear(d, self.n_bins)
        self.missing_path = missing_token(1, d)
        self.missing_omic = missing_token(len(self.omic_sizes), d, salt=1)

    def embed(
        self, path: torch.Tensor | None, omics: Sequence[torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch tokens (N, d) and one token per gene family (G, d); None: the learned tokens."""
        h_path = self.missing_path if path is None else self.wsi_net(path)
        h_omic = self.missing_omic if omics is None else self.sig_networks(omics)
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
        h_path, h_omic = self.embed(path, omics)
        h_coattn, _ = self.coattend(h_omic, h_path)
        h = torch.cat([self.path_head(h_coattn), self.omic_head(h_omic)], dim=1)  # (1, 2d)
        return ModelOutput.from_logits(self.classifier(self.mm(h)))

    @torch.no_grad()
    def patch_scores(
        self, path: torch.Tensor, omics: Sequence[torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """{"family{g}": (N,)} each family's co-attention weights over the patches (caption)."""
        path = self.check_score_inputs(path, omics)
        h_path, h_omic = self.embed(path, omics)
        _, weights = self.coattend(h_omic, h_path)  # (G, N): forward's co-attention
        return {f"family{g}": w.float() for g, w in enumerate(weights)}


@register_model
def mcat(**kwargs: Any) -> MCAT:
    """MCAT baseline (pathology + genomics, co-attention)."""
    return MCAT(**kwargs)
