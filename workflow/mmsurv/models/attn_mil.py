"""AttnMIL (pathology only): gated-attention MIL (ABMIL) as in PORPOISE's survival baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from mmsurv.models._layers import GatedAttention, ModelOutput, SurvModel
from mmsurv.models._registry import register_model


class AttnMIL(SurvModel):
    """Patches → Linear 512 + ReLU → gated attention (512→256) → weighted sum → 256 → logits."""

    modalities = frozenset({"path"})
    patch_score_caption = (
        "gated-attention weight of each patch: the softmax over the case's patches (all its "
        "slides; the weights sum to 1) that forms the pooled representation the risk is "
        "predicted from"
    )

    def __init__(self, *, hidden: int = 512, attn_dim: int = 256, **kwargs: Any) -> None:
        kwargs.setdefault("dropout", 0.25)
        super().__init__(**kwargs)
        self.fc = nn.Sequential(
            nn.Linear(self.path_dim, hidden), nn.ReLU(), nn.Dropout(self.dropout)
        )
        self.attention = GatedAttention(hidden, attn_dim, dropout=self.dropout)
        self.rho = nn.Sequential(nn.Linear(hidden, attn_dim), nn.ReLU(), nn.Dropout(self.dropout))
        self.classifier = nn.Linear(attn_dim, self.n_bins)

    def forward(
        self, path: torch.Tensor | None = None, omics: Sequence[torch.Tensor] | None = None
    ) -> ModelOutput:
        """Predict one case's discrete hazards from its patch bag (omics are ignored)."""
        self.check_inputs(path, omics)
        pooled, _ = self._attend(cast(torch.Tensor, path))
        return ModelOutput.from_logits(self.classifier(self.rho(pooled)))

    def _attend(self, path: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (1, hidden) pooled bag and the (N,) softmax weights that pooled it."""
        return self.attention(self.fc(path))

    def patch_scores(
        self, path: torch.Tensor, omics: Sequence[torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """The attention weights forward pools the bag with, one per patch in bag order."""
        self.check_inputs(path, omics)
        _, weights = self._attend(path)
        return {"attention": weights}


@register_model
def attn_mil(**kwargs: Any) -> AttnMIL:
    """ABMIL baseline (pathology only)."""
    return AttnMIL(**kwargs)
