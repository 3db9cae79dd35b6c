"""HFBSurv (pathology + genomics): hierarchical factorized bilinear fusion of pooled vectors.

Follows `HFBSurv` in Liruiqing-ustc/HFBSurv `HFBSurv/model/HFB_fusion.py` (Li et al.,
Bioinformatics 2022) with its sizes (intra/inter output 20, rank 20, factor dropout 0.1, head
256 → 64). The original fuses three pre-extracted vectors (gene expression, pathology, CNA);
the paper reproduced here uses two modalities, so the bag is first pooled to a vector by gated
attention and the gene families go through an SNN. Deviations, all marked "design:":
- two modalities, so there is one inter-modal pair and its softmax pair weight is always 1;
- each modality gets its own inter-modal projection (the reference applies `Linear_gene_a` to
  all three and never uses `Linear_path_a` / `Linear_cona_a`);
- LayerNorm replaces BatchNorm1d on the fused vector (batch size 1 here; BatchNorm needs > 1);
- the head ends in n_bins hazard logits instead of a sigmoid Cox score scaled to [-3, 3].

Missing modality (models/_missing.py): a withheld bag is one learned token of width `hidden`
after the input projection; withheld omics are one learned (1, d) token in place of the SNN's
output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmsurv.models._layers import GatedAttention, ModelOutput, SNNBlock, SurvModel
from mmsurv.models._missing import missing_token
from mmsurv.models._registry import register_model

__all__ = ["HFBSurv", "hfbsurv", "mfb_pool"]


def mfb_pool(
    x1: torch.Tensor, x2: torch.Tensor, out_dim: int, *, dropout: nn.Module | None = None
) -> torch.Tensor:
    """Factorized bilinear pooling of (B, k·o) projections → (B, o), power- and L2-normalised.

    z = Σ_k (x1 ⊙ x2) over each group of k consecutive entries, then sign(z)·√|z|, then z/‖z‖.
    """
    if x1.shape != x2.shape or x1.shape[-1] % out_dim:
        raise ValueError(
            f"mfb_pool: need equal (B, k·{out_dim}) inputs, got {tuple(x1.shape)}, "
            f"{tuple(x2.shape)}"
        )
    z = x1 * x2
    if dropout is not None:
        z = dropout(z)
    z = z.view(z.shape[0], out_dim, -1).sum(dim=2)
    # Signed square root as sign·√|z|; the clamp keeps the gradient finite at z = 0, where the
    # reference's √relu(z) − √relu(−z) has an infinite derivative.
    z = torch.sign(z) * torch.sqrt(z.abs().clamp_min(1e-12))
    return F.normalize(z, dim=1)


class HFBSurv(SurvModel):
    """Pooled path + SNN omic vectors → intra-modal MFB (each with itself) → inter-modal MFB."""

    modalities = frozenset({"path", "omic"})
    # The omic SNN and the omic vector's own intra- and inter-modal projections.
    omic_modules = ("fc_omic", "intra_omic", "inter_omic")
    concat_omics = True
    accepts_missing = True

    def __init__(
        self,
        *,
        hidden: int = 512,
        attn_dim: int = 256,
        d: int = 256,
        out_intra: int = 20,
        out_inter: int = 20,
        rank: int = 20,
        factor_dropout: float = 0.1,
        head_hidden: int = 256,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dropout", 0.25)
        super().__init__(**kwargs)
        self.d, self.out_intra, self.out_inter, self.rank = d, out_intra, out_inter, rank
        # design: modality encoders producing the d-dim vectors the reference takes as input
        # (ABMIL for the bag as in PORPOISE, SNN for the concatenated families).
        self.path_fc = nn.Sequential(
            nn.Linear(self.path_dim, hidden), nn.ReLU(), nn.Dropout(self.dropout)
        )
        self.attention = GatedAttention(hidden, attn_dim, dropout=self.dropout)
        self.path_rho = nn.Sequential(nn.Linear(hidden, d), nn.ReLU(), nn.Dropout(self.dropout))
        self.fc_omic = nn.Sequential(
            SNNBlock(sum(self.omic_sizes), d, self.dropout), SNNBlock(d, d, self.dropout)
        )
        self.factor_dropout = nn.Dropout(factor_dropout)
        # Intra-modal: one k·o projection per modality, multiplied with itself.
        self.intra_path = nn.Linear(d, rank * out_intra)
        self.intra_omic = nn.Linear(d, rank * out_intra)
        # Modality importance s_m = σ(w·[x_m, intra_m]), one scorer shared by both (as the
        # reference's `self.attention`).
        self.modality_score = nn.Sequential(nn.Linear(d + out_intra, 1), nn.Sigmoid())
        # design: separate inter-modal projections (see the module docstring).
        self.inter_path = nn.Linear(d + out_intra, rank * out_inter)
        self.inter_omic = nn.Linear(d + out_intra, rank * out_inter)
        fused = d + out_intra + out_inter
        self.norm = nn.LayerNorm(fused)
        # Reference head: 256 → 64 with Tanh; design: its dropout (0.3 there) follows `dropout`.
        self.head = nn.Sequential(
            nn.Linear(fused, head_hidden),
            nn.Tanh(),
            nn.Dropout(self.dropout),
            nn.Linear(head_hidden, 64),
            nn.Tanh(),
            nn.Dropout(self.dropout),
        )
        self.classifier = nn.Linear(64, self.n_bins)
        self.missing_path = missing_token(1, hidden)
        self.missing_omic = missing_token(1, d, salt=1)

    def embed(
        self, path: torch.Tensor | None, omics: Sequence[torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Modality vectors: attention-pooled pathology (1, d), SNN omics (1, d); None: token."""
        pooled, _ = self.attention(self.missing_path if path is None else self.path_fc(path))
        if omics is None:
            return self.path_rho(pooled), self.missing_omic
        return self.path_rho(pooled), self.fc_omic(torch.cat(list(omics)).unsqueeze(0))

    def fuse(self, x_path: torch.Tensor, x_omic: torch.Tensor) -> torch.Tensor:
        """Hierarchical fusion of two (1, d) vectors → (1, d + out_intra + out_inter)."""
        drop = self.factor_dropout
        hp, ho = self.intra_path(x_path), self.intra_omic(x_omic)
        xp = torch.cat([x_path, mfb_pool(hp, hp, self.out_intra, dropout=drop)], dim=1)
        xo = torch.cat([x_omic, mfb_pool(ho, ho, self.out_intra, dropout=drop)], dim=1)
        xp = self.modality_score(xp) * xp
        xo = self.modality_score(xo) * xo
        unimodal = xp + xo
        # design: with two modalities the reference's softmax over modality pairs has one entry,
        # so the single inter-modal term is weighted by 1.
        bimodal = mfb_pool(self.inter_path(xp), self.inter_omic(xo), self.out_inter, dropout=drop)
        return self.norm(torch.cat([unimodal, bimodal], dim=1))

    def forward(
        self, path: torch.Tensor | None = None, omics: Sequence[torch.Tensor] | None = None
    ) -> ModelOutput:
        """Predict one case's discrete hazards from its bag and omics."""
        self.check_inputs(path, omics)
        x_path, x_omic = self.embed(path, omics)
        return ModelOutput.from_logits(self.classifier(self.head(self.fuse(x_path, x_omic))))


@register_model
def hfbsurv(**kwargs: Any) -> HFBSurv:
    """HFBSurv baseline (pathology + genomics, hierarchical factorized bilinear fusion)."""
    return HFBSurv(**kwargs)
