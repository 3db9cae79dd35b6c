"""SNN (genomics only): PORPOISE's self-normalising network on the concatenated omics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from mmsurv.models._layers import ModelOutput, SNNBlock, SurvModel, init_max_weights
from mmsurv.models._registry import register_model


class SNN(SurvModel):
    """Concatenated omics → 4 × [Linear 256 → ELU → AlphaDropout] → n_bins logits."""

    modalities = frozenset({"omic"})
    concat_omics = True

    def __init__(self, *, hidden: int = 256, n_blocks: int = 4, **kwargs: Any) -> None:
        kwargs.setdefault("dropout", 0.25)
        super().__init__(**kwargs)
        dims = [sum(self.omic_sizes)] + [hidden] * n_blocks
        self.fc_omic = nn.Sequential(
            *(
                SNNBlock(a, b, dropout=self.dropout)
                for a, b in zip(dims[:-1], dims[1:], strict=True)
            )
        )
        self.classifier = nn.Linear(hidden, self.n_bins)
        init_max_weights(self)

    def forward(
        self, path: torch.Tensor | None = None, omics: Sequence[torch.Tensor] | None = None
    ) -> ModelOutput:
        """Predict one case's discrete hazards from its omics (the bag is ignored)."""
        self.check_inputs(path, omics)
        x = torch.cat(list(cast(Sequence[torch.Tensor], omics))).unsqueeze(0)
        return ModelOutput.from_logits(self.classifier(self.fc_omic(x)))


@register_model
def snn(**kwargs: Any) -> SNN:
    """PORPOISE SNN baseline (genomics only)."""
    return SNN(**kwargs)
