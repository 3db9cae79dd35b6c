"""PORPOISE-MMF (pathology + genomics): ABMIL and SNN branches joined by gated Kronecker fusion.

Follows `PorpoiseMMF` and `BilinearFusion` in mahmoodlab/PORPOISE `models/model_porpoise.py`
with its defaults: fusion='bilinear', scale_dim 8 (256 → 32), both gates on, skip=True,
dropinput 0.10, size "small", SNN (not MLP) omic blocks.

Missing modality (models/_missing.py): a withheld bag is one learned token of width `hidden`
after the input projection (so attention pools that one token); withheld omics are one learned
(1, d) token in place of the omic SNN's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mmsurv.models._layers import GatedAttention, ModelOutput, SNNBlock, SurvModel
from mmsurv.models._missing import missing_token
from mmsurv.models._registry import register_model

__all__ = ["BilinearFusion", "Porpoise", "porpoise"]


class BilinearFusion(nn.Module):
    """Gated Kronecker fusion: gate and shrink each vector, append 1, outer product, encode."""

    def __init__(
        self,
        dim1: int = 256,
        dim2: int = 256,
        *,
        scale_dim1: int = 8,
        scale_dim2: int = 8,
        mmhid: int = 256,
        skip: bool = True,
        gate1: bool = True,
        gate2: bool = True,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        self.skip, self.gate1, self.gate2 = skip, gate1, gate2
        r1, r2 = dim1 // scale_dim1, dim2 // scale_dim2
        if r1 < 1 or r2 < 1:
            raise ValueError(f"scale_dim too large: {dim1}//{scale_dim1}, {dim2}//{scale_dim2}")
        self.reduced_dims = (r1, r2)
        self.kron_dim = (r1 + 1) * (r2 + 1)
        # h: the modality's own projection; z: a gate computed from both (PORPOISE's
        # use_bilinear=0 default: a Linear on the concatenation); o: post-gate layer.
        self.linear_h1 = nn.Sequential(nn.Linear(dim1, r1), nn.ReLU())
        self.linear_z1 = nn.Linear(dim1 + dim2, r1)
        self.linear_o1 = nn.Sequential(nn.Linear(r1, r1), nn.ReLU(), nn.Dropout(dropout))
        self.linear_h2 = nn.Sequential(nn.Linear(dim2, r2), nn.ReLU())
        self.linear_z2 = nn.Linear(dim1 + dim2, r2)
        self.linear_o2 = nn.Sequential(nn.Linear(r2, r2), nn.ReLU(), nn.Dropout(dropout))
        self.post_fusion_dropout = nn.Dropout(dropout)
        self.encoder1 = nn.Sequential(nn.Linear(self.kron_dim, mmhid), nn.ReLU())
        skip_dim = dim1 + dim2 if skip else 0
        self.encoder2 = nn.Sequential(nn.Linear(mmhid + skip_dim, mmhid), nn.ReLU())

    def kronecker(self, vec1: torch.Tensor, vec2: torch.Tensor) -> torch.Tensor:
        """(B, dim1), (B, dim2) → (B, (r1+1)·(r2+1)) flattened outer product of [o1, 1] and [o2, 1].

        The appended 1 keeps the unimodal terms o1, o2 (and a constant) inside the product.
        """
        both = torch.cat([vec1, vec2], dim=1)
        h1, h2 = self.linear_h1(vec1), self.linear_h2(vec2)
        o1 = self.linear_o1(torch.sigmoid(self.linear_z1(both)) * h1 if self.gate1 else h1)
        o2 = self.linear_o2(torch.sigmoid(self.linear_z2(both)) * h2 if self.gate2 else h2)
        one = vec1.new_ones(vec1.shape[0], 1)
        o1, o2 = torch.cat([o1, one], dim=1), torch.cat([o2, one], dim=1)
        return (o1.unsqueeze(2) * o2.unsqueeze(1)).flatten(start_dim=1)

    def forward(self, vec1: torch.Tensor, vec2: torch.Tensor) -> torch.Tensor:
        """Fuse (B, dim1) and (B, dim2) into (B, mmhid)."""
        out = self.encoder1(self.post_fusion_dropout(self.kronecker(vec1, vec2)))
        if self.skip:
            out = torch.cat([out, vec1, vec2], dim=1)
        return self.encoder2(out)


class Porpoise(SurvModel):
    """ABMIL path (512, gated attn 256, rho 256) + SNN omics (256, 256) → bilinear fusion."""

    modalities = frozenset({"path", "omic"})
    # The omic SNN, and the fusion's projection of the omic vector alone (its gate z2 sees both).
    omic_modules = ("fc_omic", "fusion.linear_h2")
    concat_omics = True
    accepts_missing = True
    patch_score_caption = (
        "Gated-attention weight of each patch in the pathology branch's pooling (ABMIL, computed "
        "from the patch alone, before fusion with the genomics): softmax weight, sums to 1 over "
        "the bag."
    )

    def __init__(
        self,
        *,
        hidden: int = 512,
        d: int = 256,
        dropinput: float = 0.10,
        scale_dim: int = 8,
        skip: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dropout", 0.25)
        super().__init__(**kwargs)
        # PORPOISE drops input features (p = 0.10) before the first path layer.
        fc: list[nn.Module] = [nn.Dropout(dropinput)] if dropinput > 0 else []
        fc += [nn.Linear(self.path_dim, hidden), nn.ReLU(), nn.Dropout(self.dropout)]
        self.path_fc = nn.Sequential(*fc)
        self.attention = GatedAttention(hidden, d, dropout=self.dropout)
        self.rho = nn.Sequential(nn.Linear(hidden, d), nn.ReLU(), nn.Dropout(self.dropout))
        # Omic SNN on the concatenated families: SNN_Block(in, 256) → SNN_Block(256, 256).
        self.fc_omic = nn.Sequential(
            SNNBlock(sum(self.omic_sizes), d, self.dropout), SNNBlock(d, d, self.dropout)
        )
        self.fusion = BilinearFusion(
            d,
            d,
            scale_dim1=scale_dim,
            scale_dim2=scale_dim,
            mmhid=d,
            skip=skip,
            dropout=self.dropout,
        )
        self.classifier = nn.Linear(d, self.n_bins)
        self.missing_path = missing_token(1, hidden)
        self.missing_omic = missing_token(1, d, salt=1)

    def embed(
        self, path: torch.Tensor | None, omics: Sequence[torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Branch outputs: pooled pathology (1, d) and omic (1, d) vectors (None: the token)."""
        h_path, _ = self.embed_path(path)
        if omics is None:
            return h_path, self.missing_omic
        return h_path, self.fc_omic(torch.cat(list(omics)).unsqueeze(0))

    def embed_path(self, path: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pathology branch: pooled vector (1, d) and the attention weights over the patches."""
        h = self.missing_path if path is None else self.path_fc(path)
        pooled, weights = self.attention(h)
        return self.rho(pooled), weights

    @torch.no_grad()
    def patch_scores(
        self, path: torch.Tensor, omics: Sequence[torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """{"attention": (N,)} the pathology branch's gated-attention weights (caption)."""
        path = self.check_score_inputs(path, omics)
        return {"attention": self.embed_path(path)[1].float()}

    def forward(
        self, path: torch.Tensor | None = None, omics: Sequence[torch.Tensor] | None = None
    ) -> ModelOutput:
        """Predict one case's discrete hazards from its bag and omics (one may be None)."""
        self.check_inputs(path, omics)
        h_path, h_omic = self.embed(path, omics)
        return ModelOutput.from_logits(self.classifier(self.fusion(h_path, h_omic)))


@register_model
def porpoise(**kwargs: Any) -> Porpoise:
    """PORPOISE-MMF baseline (pathology + genomics, gated bilinear fusion)."""
    return Porpoise(**kwargs)
