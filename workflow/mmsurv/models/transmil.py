"""TransMIL (pathology only): Nyström-attention transformer with PPEG over the patch bag.

Shao et al., NeurIPS 2021; follows github szc19990412/TransMIL `models/TransMIL.py`, with the
classification head replaced by n_bins discrete-hazard logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from mmsurv.models._layers import ModelOutput, SurvModel
from mmsurv.models._registry import register_model
from mmsurv.models._transmil_layers import TransMILEncoder, fold_copies


class TransMIL(SurvModel):
    """Patches → Linear dim + ReLU → square pad + class token → TransLayer → PPEG → TransLayer."""

    modalities = frozenset({"path"})
    patch_score_caption = (
        "Attention of the class token over the patch tokens in TransMIL's last (second) Nyström "
        "attention layer, averaged over its 8 heads (its row of the Nyström-approximated "
        "attention matrix; a patch's square-padding copy is added to it): sums to about 1 over "
        "the bag less the class token's attention to itself (and, in bags shorter than the "
        "layer's landmark count, to the zero tokens it pads with), and can be slightly negative."
    )

    def __init__(self, *, dim: int = 512, num_landmarks: int | None = None, **kwargs: Any) -> None:
        # design: the reference's only dropout is the attention output dropout (0.1) of its
        # TransLayers, so `dropout` drives that one and defaults to the reference's 0.1.
        kwargs.setdefault("dropout", 0.1)
        super().__init__(**kwargs)
        self.fc = nn.Sequential(nn.Linear(self.path_dim, dim), nn.ReLU())
        self.encoder = TransMILEncoder(
            dim, ppeg=True, dropout=self.dropout, cls_std=1.0, num_landmarks=num_landmarks
        )
        self.classifier = nn.Linear(dim, self.n_bins)

    def forward(
        self, path: torch.Tensor | None = None, omics: Sequence[torch.Tensor] | None = None
    ) -> ModelOutput:
        """Predict one case's discrete hazards from its patch bag (omics are ignored)."""
        self.check_inputs(path, omics)
        cls, _ = self.encoder(self.fc(cast(torch.Tensor, path)))
        return ModelOutput.from_logits(self.classifier(cls))

    @torch.no_grad()
    def patch_scores(
        self, path: torch.Tensor, omics: Sequence[torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """{"attention": (N,)} the class token's last-layer attention on each patch (caption)."""
        self.check_inputs(path, omics)
        _, _, scores = self.encoder.encode(self.fc(path), cls_attention=True)
        return {"attention": fold_copies(cast(torch.Tensor, scores), path.shape[0]).float()}


@register_model
def transmil(**kwargs: Any) -> TransMIL:
    """TransMIL baseline (pathology only)."""
    return TransMIL(**kwargs)
