"""Blocks shared by the models: SNN block, gated attention pooling, output and input checks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass
class ModelOutput:
    """Per-case model output; `surv` is non-increasing and risk = −Σ_t surv."""

    logits: torch.Tensor  # (1, T)
    hazards: torch.Tensor  # (1, T) = sigmoid(logits)
    surv: torch.Tensor  # (1, T) = cumprod(1 - hazards)
    aux_loss: torch.Tensor  # scalar, already weighted; 0 when the model has none

    @classmethod
    def from_logits(cls, logits: torch.Tensor, aux_loss: torch.Tensor | None = None) -> ModelOutput:
        """Derive hazards and survival from (1, T) logits."""
        hazards = torch.sigmoid(logits)
        surv = torch.cumprod(1.0 - hazards, dim=1)
        if aux_loss is None:
            aux_loss = logits.new_zeros(())
        return cls(logits=logits, hazards=hazards, surv=surv, aux_loss=aux_loss)


class SNNBlock(nn.Sequential):
    """Self-normalising block: Linear → ELU → AlphaDropout (PORPOISE/MCAT `SNN_Block`)."""

    def __init__(self, dim_in: int, dim_out: int, dropout: float = 0.25) -> None:
        super().__init__(nn.Linear(dim_in, dim_out), nn.ELU(), nn.AlphaDropout(p=dropout))


def init_max_weights(module: nn.Module) -> None:
    """SNN initialisation of PORPOISE: Linear weights ~ N(0, 1/fan_in), zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            m.weight.data.normal_(0, 1.0 / math.sqrt(m.weight.size(1)))
            if m.bias is not None:
                m.bias.data.zero_()


class GatedAttention(nn.Module):
    """Gated attention pooling (CLAM's Attn_Net_Gated): a = W_c(tanh(W_a x) ⊙ σ(W_b x))."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.25) -> None:
        super().__init__()
        self.attention_a = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Dropout(dropout))
        self.attention_b = nn.Sequential(nn.Linear(dim, hidden), nn.Sigmoid(), nn.Dropout(dropout))
        self.attention_c = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool (N, dim) instances into (1, dim); also return the (N,) softmax weights."""
        scores = self.attention_c(self.attention_a(x) * self.attention_b(x)).squeeze(-1)
        weights = torch.softmax(scores, dim=0)
        return weights.unsqueeze(0) @ x, weights


class FamilyNetworks(nn.ModuleList):
    """One SNN per gene family (MCAT "small": size → d → d), each giving one (d,) token."""

    def __init__(self, sizes: Sequence[int], d: int, hidden: int | None = None) -> None:
        hidden = d if hidden is None else hidden
        super().__init__(
            nn.Sequential(SNNBlock(size, hidden), SNNBlock(hidden, d, dropout=0.25))
            for size in sizes
        )

    def forward(self, omics: Sequence[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Family vectors → (G, d) tokens."""
        return torch.stack([net(x) for net, x in zip(self, omics, strict=True)])


class TokenSetHead(nn.Module):
    """MCAT's per-modality head: Transformer encoder → gated attention pooling → Linear + ReLU.

    The paper's T_p / T_g aggregators are the same block; MCAT uses post-norm layers with a
    feed-forward of 2·d (512 for d = 256), ReLU and the model's dropout.
    """

    def __init__(self, d: int, n_heads: int, n_layers: int, dropout: float) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=d,
            nhead=n_heads,
            dim_feedforward=2 * d,
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


class SurvModel(nn.Module):
    """Base class: declares the modalities a model needs and validates forward inputs."""

    modalities: ClassVar[frozenset[str]] = frozenset()
    # Multimodal models name the sub-modules of their genomics branch: every module that reads
    # only omics-derived tensors, before they mix with pathology (see omic_parameters).
    omic_modules: ClassVar[tuple[str, ...]] = ()
    # True for models whose forward concatenates all omics blocks into one vector (training's
    # omic_input unique_genes then passes one block of unique columns instead of the families).
    concat_omics: ClassVar[bool] = False
    # True for multimodal models whose forward takes path=None or omics=None (one modality
    # withheld: a learned missing token stands in for it, models/_missing.py); never both.
    accepts_missing: ClassVar[bool] = False
    # What `patch_scores` returns, in words, for heatmap captions; None = no per-patch quantity.
    patch_score_caption: ClassVar[str | None] = None

    def __init__(
        self,
        *,
        n_bins: int = 4,
        path_dim: int = 1024,
        omic_sizes: Sequence[int] | None = None,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        if "omic" in self.modalities:
            if not omic_sizes or any(int(s) < 1 for s in omic_sizes):
                raise ValueError(
                    f"{type(self).__name__} needs omic_sizes (>= 1 each), got {omic_sizes}"
                )
        self.n_bins = n_bins
        self.path_dim = path_dim
        self.omic_sizes = [int(s) for s in omic_sizes] if omic_sizes else []
        self.dropout = dropout

    def patch_scores(
        self, path: torch.Tensor, omics: Sequence[torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-patch scores of one bag for heatmaps: panel name -> (N,) tensor in bag order.

        Models with patch-level attention or transport override this (and set
        `patch_score_caption`). A single panel is named "attention"; models that attend per gene
        family return one panel per family, "family0" ... "family{G-1}" in omics order. Called in
        eval mode without gradients; the scores are real quantities of the forward pass.
        """
        raise NotImplementedError(f"{type(self).__name__} has no per-patch scores")

    def check_score_inputs(
        self, path: torch.Tensor | None, omics: Sequence[torch.Tensor] | None
    ) -> torch.Tensor:
        """check_inputs for patch_scores, which needs the bag (a withheld one has no patches)."""
        self.check_inputs(path, omics)
        if path is None:
            raise ValueError(f"{type(self).__name__}.patch_scores needs a pathology bag, got None")
        return path

    def check_inputs(self, path: torch.Tensor | None, omics: Sequence[torch.Tensor] | None) -> None:
        """Raise a clear error when a needed modality is absent or mis-shaped."""
        name = type(self).__name__
        if self.accepts_missing and path is None and omics is None:
            raise ValueError(
                f"{name} needs a pathology bag (path) or omics; got neither (at most one "
                "modality may be withheld)"
            )
        if "path" in self.modalities and not (self.accepts_missing and path is None):
            if path is None:
                raise ValueError(f"{name} needs a pathology bag (path), got None")
            if path.ndim != 2 or path.shape[1] != self.path_dim:
                raise ValueError(
                    f"{name}: path must have shape (N, {self.path_dim}), got {tuple(path.shape)}"
                )
            if path.shape[0] == 0:
                raise ValueError(f"{name}: empty pathology bag (0 patches)")
        if "omic" in self.modalities and not (self.accepts_missing and omics is None):
            if omics is None:
                raise ValueError(f"{name} needs omics (one tensor per family), got None")
            if len(omics) != len(self.omic_sizes):
                raise ValueError(
                    f"{name}: expected {len(self.omic_sizes)} families, got {len(omics)}"
                )
            got = [tuple(o.shape) for o in omics]
            if any(g != (s,) for g, s in zip(got, self.omic_sizes, strict=True)):
                raise ValueError(
                    f"{name}: omics shapes {got} do not match omic_sizes {self.omic_sizes}"
                )

    def omic_parameters(self) -> list[nn.Parameter]:
        """Parameters of the genomics branch (training's l1_scope omic); none → ValueError."""
        name = type(self).__name__
        if "omic" not in self.modalities:
            raise ValueError(f"l1_scope omic: {name} reads no omics, so it has no genomics branch")
        if "path" not in self.modalities:
            return list(self.parameters())  # a genomics-only model is all genomics branch
        if not self.omic_modules:
            raise ValueError(f"l1_scope omic: {name} does not declare its omic_modules")
        seen: dict[int, nn.Parameter] = {}
        for module in self.omic_modules:
            for q in self.get_submodule(module).parameters():
                seen.setdefault(id(q), q)
        return list(seen.values())
