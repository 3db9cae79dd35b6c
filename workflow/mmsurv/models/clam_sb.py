"""CLAM-SB (pathology only): gated-attention MIL plus CLAM's top-k / bottom-k instance loss.

Follows `CLAM_SB` in mahmoodlab/CLAM `models/model_clam.py` (size "small", gated attention,
subtyping=False) and the weighting of `train_loop_clam` in `utils/core_utils.py`. The "classes"
are the discrete survival time bins: the bag head gives the n_bins hazard logits and there is one
binary instance classifier per bin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from mmsurv.models._layers import GatedAttention, ModelOutput, SurvModel
from mmsurv.models._registry import register_model

__all__ = ["CLAMSB", "clam_sb", "smooth_top1_svm_loss"]


def smooth_top1_svm_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 1.0,
    tau: float = 1.0,
    thresh: float = 1e3,
) -> torch.Tensor:
    """Mean smooth top-1 SVM loss (Berrada et al., ICLR 2018), CLAM's `--inst_loss svm`.

    Per sample: tau · logsumexp_j((s_j + alpha·[j ≠ y] − s_y) / tau). Like `topk.SmoothTop1SVM`,
    a sample whose top score leads the runner-up by ≥ tau·log(thresh) uses the hard hinge
    max_j(s_j + alpha·[j ≠ y]) − s_y instead (the two then differ by < tau/thresh).
    """
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(
            f"smooth_top1_svm_loss: need (n, C) logits and (n,) targets, got "
            f"{tuple(logits.shape)} and {tuple(target.shape)}"
        )
    margin = alpha * (
        torch.arange(logits.shape[1], device=logits.device) != target.unsqueeze(1)
    ).to(logits.dtype)
    score_y = logits.gather(1, target.unsqueeze(1))
    aug = logits + margin - score_y  # (n, C)
    smooth = tau * torch.logsumexp(aug / tau, dim=1)
    hard = aug.max(dim=1).values
    top2 = logits.topk(min(2, logits.shape[1]), dim=1).values
    gap = top2[:, 0] - top2[:, -1]
    use_hard = (gap >= tau * math.log(thresh)).detach()
    return torch.where(use_hard, hard, smooth).mean()


class CLAMSB(SurvModel):
    """Linear 512 + ReLU → gated attention (512→256) → bag head n_bins; per-bin instance heads."""

    modalities = frozenset({"path"})
    patch_score_caption = (
        "Gated-attention weight of each patch in the bag-level pooling (the attention branch "
        "that also picks the instance loss's top and bottom patches): softmax weight, sums to 1 "
        "over the bag."
    )

    def __init__(
        self,
        *,
        hidden: int = 512,
        attn_dim: int = 256,
        k_sample: int = 8,
        bag_weight: float = 0.7,
        inst_loss: Literal["svm", "ce"] = "svm",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dropout", 0.25)
        super().__init__(**kwargs)
        if k_sample < 1:
            raise ValueError(f"k_sample must be >= 1, got {k_sample}")
        if not 0 < bag_weight <= 1:
            raise ValueError(f"bag_weight must be in (0, 1], got {bag_weight}")
        if inst_loss not in ("svm", "ce"):
            raise ValueError(f"inst_loss must be 'svm' or 'ce', got {inst_loss!r}")
        self.k_sample = int(k_sample)
        self.bag_weight = float(bag_weight)
        self.inst_loss = inst_loss
        self.fc = nn.Sequential(
            nn.Linear(self.path_dim, hidden), nn.ReLU(), nn.Dropout(self.dropout)
        )
        self.attention = GatedAttention(hidden, attn_dim, dropout=self.dropout)
        self.classifier = nn.Linear(hidden, self.n_bins)
        self.instance_classifiers = nn.ModuleList(nn.Linear(hidden, 2) for _ in range(self.n_bins))

    def _pool(self, path: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patch embeddings (N, hidden), attention-pooled bag (1, hidden), softmax weights (N,)."""
        h = self.fc(path)
        pooled, weights = self.attention(h)
        return h, pooled, weights

    @torch.no_grad()
    def patch_scores(
        self, path: torch.Tensor, omics: Sequence[torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """{"attention": (N,)} the attention branch's weights that pool the bag (caption)."""
        self.check_inputs(path, omics)
        return {"attention": self._pool(path)[2].float()}

    def instance_loss(self, h: torch.Tensor, weights: torch.Tensor, label: int) -> torch.Tensor:
        """CLAM's in-class instance loss: the label's head calls top-k patches 1, bottom-k 0.

        design: k = min(k_sample, N // 2) so the two sets never overlap (CLAM's fixed k makes
        `torch.topk` raise on bags under k patches); with N < 2 there is no pair to contrast and
        the loss is 0.
        """
        k = min(self.k_sample, h.shape[0] // 2)
        if k == 0:
            return h.new_zeros(())
        # One sort instead of CLAM's two topk calls: the sets stay disjoint even with tied weights.
        order = torch.argsort(weights.detach(), descending=True)
        top, bottom = order[:k], order[-k:]
        logits = self.instance_classifiers[label](torch.cat([h[top], h[bottom]]))
        target = (torch.arange(2 * k, device=h.device) < k).long()  # k ones, then k zeros
        if self.inst_loss == "svm":
            return smooth_top1_svm_loss(logits, target)
        return F.cross_entropy(logits, target)

    def forward(
        self,
        path: torch.Tensor | None = None,
        omics: Sequence[torch.Tensor] | None = None,
        *,
        label: torch.Tensor | None = None,
    ) -> ModelOutput:
        """Predict hazards from the bag; in training with `label` also return the instance loss."""
        self.check_inputs(path, omics)
        h, pooled, weights = self._pool(cast(torch.Tensor, path))
        logits = self.classifier(pooled)
        aux = None
        if self.training and label is not None:
            if label.numel() != 1 or not 0 <= int(label.item()) < self.n_bins:
                raise ValueError(
                    f"CLAMSB: label must hold one bin index in [0, {self.n_bins}), got {label}"
                )
            # CLAM trains on bag_weight·L_bag + (1 − bag_weight)·L_inst; our loop adds aux_loss to
            # L_surv unweighted, so we return (1 − w)/w · L_inst: CLAM's objective scaled by 1/w,
            # i.e. the same minimiser and relative weighting (with w = 0.7 the step size is ×1/0.7).
            w = self.bag_weight
            aux = (1.0 - w) / w * self.instance_loss(h, weights, int(label.item()))
        return ModelOutput.from_logits(logits, aux_loss=aux)


@register_model
def clam_sb(**kwargs: Any) -> CLAMSB:
    """CLAM single-branch baseline (pathology only), smooth-SVM instance loss by default."""
    return CLAMSB(**kwargs)
