"""The paper's model: grouped pathology tokens + family SNN tokens, SimMe, BDCA, OT, aggregators.

Zhang et al. 2025 ("global – local – global" fusion); see shared/paper/SPEC.md. Choices where
the paper is silent are marked "design:" below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import ot
import torch
import torch.nn.functional as F
from torch import nn

from mmsurv.models._layers import FamilyNetworks, ModelOutput, SurvModel, TokenSetHead
from mmsurv.models._registry import register_model

__all__ = ["Ours", "ot_plan"]


def ot_plan(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    reg: float = 0.05,
    reg_m: float = 0.5,
    unbalanced: bool = True,
) -> torch.Tensor:
    """Entropic OT plan (N, M) between the rows of x (N, d) and y (M, d), uniform marginals.

    Cost = squared Euclidean distance normalised by its maximum and detached (MOTCat), so the plan
    is a constant for autograd; gradients flow through what the plan is applied to.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"ot_plan: need (N, d) and (M, d), got {tuple(x.shape)}, {tuple(y.shape)}")
    with torch.no_grad():
        cost = (torch.cdist(x.detach().double(), y.detach().double()) ** 2).cpu().numpy()
    # The plan is a constant, so it is solved in float64 NumPy on the CPU (as MOTCat does):
    # for these tiny (C_p × G) problems that is ~3.5× faster than POT's torch backend on CPU and
    # avoids hundreds of tiny kernel launches per case on a GPU. float64 because exp(-C/reg)
    # underflows quickly in float32.
    cmax = cost.max()
    if cmax > 0:
        cost = cost / cmax
    n, m = cost.shape
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    if unbalanced:
        plan = ot.unbalanced.sinkhorn_knopp_unbalanced(a, b, cost, reg=reg, reg_m=reg_m)
    else:
        plan = ot.sinkhorn(a, b, cost, reg=reg)
    return torch.as_tensor(plan, dtype=x.dtype, device=x.device)


class Ours(SurvModel):
    """Pathology + genomics survival model with SimMe, BDCA and OT (Zhang et al. 2025)."""

    modalities = frozenset({"path", "omic"})

    def __init__(
        self,
        *,
        d: int = 256,
        n_groups: int | None = None,
        n_layers: int = 2,
        n_heads: int = 8,
        lambda_sim: float = 1.0,
        ot_reg: float = 0.05,
        ot_reg_m: float = 0.5,
        ot_unbalanced: bool = True,
        use_simme: bool = True,
        use_bdca: bool = True,
        use_ot: bool = True,
        eval_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dropout", 0.25)
        super().__init__(**kwargs)
        self.d = d
        # C_p defaults to the number of gene families so both modalities have as many tokens.
        self.n_groups = int(n_groups) if n_groups is not None else len(self.omic_sizes)
        if self.n_groups < 1:
            raise ValueError(f"n_groups must be >= 1, got {self.n_groups}")
        self.lambda_sim = float(lambda_sim)
        self.ot_reg, self.ot_reg_m, self.ot_unbalanced = (
            float(ot_reg),
            float(ot_reg_m),
            ot_unbalanced,
        )
        self.use_simme, self.use_bdca, self.use_ot = use_simme, use_bdca, use_ot
        self.eval_seed = int(eval_seed)

        # design: "a linear layer" per group, followed by ReLU + dropout as MCAT/MOTCat's wsi_net.
        self.path_fc = nn.Sequential(
            nn.Linear(self.path_dim, d), nn.ReLU(), nn.Dropout(self.dropout)
        )
        # One SNN per family (MCAT "small": two SNN blocks, 256 → 256).
        self.sig_networks = FamilyNetworks(self.omic_sizes, d)
        if use_bdca:
            self.q_p, self.k_p, self.v_p = (nn.Linear(d, d) for _ in range(3))
            self.q_g, self.k_g, self.v_g = (nn.Linear(d, d) for _ in range(3))
        self.path_agg = TokenSetHead(d, n_heads, n_layers, self.dropout)
        self.omic_agg = TokenSetHead(d, n_heads, n_layers, self.dropout)
        self.mm = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU())
        self.classifier = nn.Linear(d, self.n_bins)

    def omic_parameters(self) -> list[nn.Parameter]:
        """Genomics branch: family SNNs + B^g's own q/k/v (BDCA), else the genomic aggregator."""
        names = ("q_g", "k_g", "v_g") if self.use_bdca else ("omic_agg",)
        return [q for n in ("sig_networks", *names) for q in self.get_submodule(n).parameters()]

    def group_patches(self, path: torch.Tensor) -> torch.Tensor:
        """Randomly partition the (N, D) bag into C_p groups and average each → (C_p, D)."""
        n, c = path.shape[0], self.n_groups
        # Training draws from the global (seeded) RNG; evaluation uses a fixed seed so that a
        # case's prediction does not depend on what was evaluated before it.
        gen = None if self.training else torch.Generator().manual_seed(self.eval_seed)
        perm = torch.randperm(n, generator=gen).to(path.device)
        if n < c:
            # design: fewer patches than groups → groups reuse patches cyclically (one each).
            return path[perm[torch.arange(c, device=path.device) % n]]
        # Position i of the permutation goes to group ⌊i·c/n⌋ (near-equal sizes); scattering the
        # group ids back avoids copying a possibly huge (N, D) bag at evaluation.
        group = torch.empty(n, dtype=torch.long, device=path.device)
        group[perm] = (torch.arange(n, device=path.device) * c) // n
        sums = path.new_zeros(c, path.shape[1]).index_add_(0, group, path)
        counts = torch.bincount(group, minlength=c).to(path.dtype).unsqueeze(1)
        return sums / counts

    def _cross(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Single-head scaled dot-product attention softmax(QKᵀ/√d) V."""
        return torch.softmax(q @ k.T / math.sqrt(self.d), dim=-1) @ v

    def forward(
        self, path: torch.Tensor | None = None, omics: Sequence[torch.Tensor] | None = None
    ) -> ModelOutput:
        """Predict one case's hazards; aux_loss = lambda_sim · (1 − cos) when SimMe is on."""
        self.check_inputs(path, omics)
        path, omics = cast(torch.Tensor, path), cast(Sequence[torch.Tensor], omics)
        b_p = self.path_fc(self.group_patches(path))  # (C_p, d)
        b_g = torch.stack(
            [net(x) for net, x in zip(self.sig_networks, omics, strict=True)]
        )  # (G, d)

        aux = b_p.new_zeros(())
        if self.use_simme:
            # SimMe: global alignment of the mean-pooled token sets.
            aux = self.lambda_sim * (1.0 - F.cosine_similarity(b_p.mean(0), b_g.mean(0), dim=0))

        if self.use_bdca:
            b_pg = self._cross(self.q_p(b_p), self.k_g(b_g), self.v_g(b_g))  # (C_p, d)
            b_gp = self._cross(self.q_g(b_g), self.k_p(b_p), self.v_p(b_p))  # (G, d)
        else:
            b_pg, b_gp = b_p, b_g

        if self.use_ot:
            plan = ot_plan(
                b_pg, b_gp, reg=self.ot_reg, reg_m=self.ot_reg_m, unbalanced=self.ot_unbalanced
            )  # (C_p, G), constant
            # B̂^{pg} = G · Pᵀ B^{pg} (G, d), G = number of rows of Pᵀ. Balanced OT: each row of Pᵀ
            # sums to 1/G, so G · Pᵀ makes rows convex combinations of B^{pg} (magnitude kept).
            # Unbalanced OT (reg_m 0.5) transports less mass (≈ 0.45 of it on random tokens), so
            # rows keep that fraction; we do not renormalise them, to keep the plan's mass signal.
            # MOTCat applies πᵀ unscaled (tokens shrink by ≈ 1/G; its post-LayerNorm absorbs it).
            b_pg_hat = (plan.T @ b_pg) * plan.shape[1]
        else:
            b_pg_hat = b_pg

        h = torch.cat([self.path_agg(b_pg_hat), self.omic_agg(b_gp)], dim=1)  # (1, 2d)
        return ModelOutput.from_logits(self.classifier(self.mm(h)), aux_loss=aux)


def _ablation(flag: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Force one component off; asking an ablation to switch it back on is an error."""
    if kwargs.get(flag, False):
        raise ValueError(f"this ablation fixes {flag}=False; use 'ours' instead")
    return {**kwargs, flag: False}


@register_model
def ours(**kwargs: Any) -> Ours:
    """Full model: SimMe + BDCA + OT."""
    return Ours(**kwargs)


@register_model
def ours_wo_simme(**kwargs: Any) -> Ours:
    """Ablation without SimMe (no L_sim)."""
    return Ours(**_ablation("use_simme", kwargs))


@register_model
def ours_wo_bdca(**kwargs: Any) -> Ours:
    """Ablation without cross-attention (B^{pg} = B^p, B^{gp} = B^g)."""
    return Ours(**_ablation("use_bdca", kwargs))


@register_model
def ours_wo_ot(**kwargs: Any) -> Ours:
    """Ablation without optimal transport (B̂^{pg} = B^{pg})."""
    return Ours(**_ablation("use_ot", kwargs))
