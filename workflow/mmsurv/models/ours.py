"""The paper's model: grouped pathology tokens + family SNN tokens, SimMe, BDCA, OT, aggregators.

Zhang et al. 2025 ("global – local – global" fusion); see shared/paper/SPEC.md. Choices where
the paper is silent are marked "design:" below.

Missing modality (models/_missing.py): a withheld bag is one learned (1, d) pathology token in
place of the C_p group tokens (after the linear layer); withheld omics are G learned family
tokens in place of the family SNNs' outputs. SimMe's alignment term is 0 then (nothing to align).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmsurv.models._layers import (
    FamilyNetworks,
    GatedAttention,
    ModelOutput,
    SurvModel,
    TokenSetHead,
)
from mmsurv.models._missing import missing_token
from mmsurv.models._registry import register_model

__all__ = [
    "GROUPINGS",
    "Ours",
    "kmeans_labels",
    "ot_plan",
    "segment_attention_pool",
    "sinkhorn_unbalanced",
]

# How a group of patches becomes one pathology token (constructor option `grouping`):
# random_mean = the literal reading (random groups, averaged); random_attn = random groups,
# gated attention within each; kmeans = C_p morphology clusters per bag, averaged, plus the
# cluster's share of the bag. See the Ours docstring and docs/mil_bags.md for the evidence.
GROUPINGS = ("random_mean", "random_attn", "kmeans")


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
        plan = sinkhorn_unbalanced(a, b, cost, reg=reg, reg_m=reg_m)
    else:
        import ot  # POT: only the balanced option needs it (its import costs ~2.5 CPU-s a job)

        plan = ot.sinkhorn(a, b, cost, reg=reg)
    return torch.as_tensor(plan, dtype=x.dtype, device=x.device)


def sinkhorn_unbalanced(
    a: np.ndarray,
    b: np.ndarray,
    cost: np.ndarray,
    *,
    reg: float,
    reg_m: float,
    num_iter_max: int = 1000,
    stop_thr: float = 1e-6,
) -> np.ndarray:
    """KL-relaxed entropic unbalanced OT plan: POT's `sinkhorn_knopp_unbalanced`, step for step.

    Written here rather than called from POT because the model solves one tiny (C_p x G)
    problem per case per forward: POT dispatches every array operation of its loop through its
    backend layer, ~5.5 ms a 6 x 6 solve here against ~2.4 ms for the same iterations in plain
    NumPy, and importing POT cost each `ours` job ~2.5 CPU-s (a DEMO-BLCA `ours` job: 17.2 ->
    13.4 CPU-s, the same risks to the bit; benchmarks/results/demo_time.md). Same iterations,
    stopping rule and numerical-error fallback as POT 0.9 (reg_type "kl", c = a b^T, 1-D
    marginals); `tests/test_models.py` checks the plans equal POT's.
    """
    kernel = np.exp(-cost / reg) * (a[:, None] * b[None, :])
    fi = reg_m / (reg_m + reg) if reg_m != float("inf") else 1.0
    u, v = np.ones(a.shape[0]), np.ones(b.shape[0])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in range(num_iter_max):
            u_prev, v_prev = u, v
            u = (a / (kernel @ v)) ** fi
            ktu = kernel.T @ u
            v = (b / ktu) ** fi
            if (ktu == 0.0).any() or not (np.isfinite(u).all() and np.isfinite(v).all()):
                warnings.warn(f"Numerical errors at iteration {i}", stacklevel=2)
                u, v = u_prev, v_prev  # machine precision reached: keep the last good iterate
                break
            err_u = np.abs(u - u_prev).max() / max(np.abs(u).max(), np.abs(u_prev).max(), 1.0)
            err_v = np.abs(v - v_prev).max() / max(np.abs(v).max(), np.abs(v_prev).max(), 1.0)
            if 0.5 * (err_u + err_v) < stop_thr:
                break
    return u[:, None] * kernel * v[None, :]


def _nearest(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Index of the nearest center for each row: argmin ‖c‖² − 2 x·c (faster than cdist here)."""
    return ((centers * centers).sum(1) - 2.0 * (x @ centers.T)).argmin(1)


@torch.no_grad()
def kmeans_labels(
    x: torch.Tensor,
    k: int,
    *,
    n_iter: int = 10,
    sample: int = 2048,
    trials: int = 16,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster the rows of x (N, D) into k groups; return labels (N,) and centroids (k, D).

    Greedy k-means++ seeding (`trials` candidates per seed) and `n_iter` Lloyd iterations on a
    random subsample of `sample` rows, then every row goes to its nearest centroid. A small
    torch k-means rather than scikit-learn's: it runs per bag inside forward (on the bag's
    device, no host copy of a 100k-patch bag) and draws from the given generator, or from
    torch's global RNG in training. A centroid that loses all its subsample rows keeps its last
    position (no NaN).
    """
    n = x.shape[0]
    if n < 1 or k < 1:
        raise ValueError(f"kmeans_labels: need N >= 1 rows and k >= 1, got N={n}, k={k}")
    idx = torch.randperm(n, generator=generator)[: min(n, sample)].to(x.device)
    xs = x[idx].float()
    first = int(torch.randint(xs.shape[0], (1,), generator=generator))
    sq = (xs * xs).sum(1)

    def dist2(j: torch.Tensor) -> torch.Tensor:  # (T,) candidate rows → (T, m) squared distances
        return (sq - 2.0 * (xs[j] @ xs.T) + sq[j].unsqueeze(1)).clamp(min=0)

    chosen = [first]
    d2 = dist2(torch.tensor([first], device=x.device))[0]
    for _ in range(1, k):
        # Greedy k-means++ (as scikit-learn's, with more trials): of `trials` candidates drawn
        # ∝ d², keep the one that lowers the potential most. In 1024-d, d² is dominated by the
        # per-patch noise, so plain k-means++ seldom seeds a small cluster.
        total = d2.sum()
        probs = (d2 / total if total > 0 else torch.ones_like(d2)).cpu()
        cand = torch.multinomial(probs, trials, replacement=True, generator=generator)
        # The farthest row is always a candidate too, so a small distinct cluster (a rare
        # phenotype) can be seeded; a lone outlier lowers the potential only by its own d², so
        # it loses to a real cluster. A rare cluster much closer to a large one than the large
        # ones are to each other can still be merged into it (docs/mil_bags.md).
        cand = torch.cat([cand, d2.argmax().cpu().reshape(1)])
        pot = torch.minimum(d2.unsqueeze(0), dist2(cand.to(x.device)))
        best = int(pot.sum(1).argmin())
        chosen.append(int(cand[best]))
        d2 = pot[best]
    cent = xs[chosen]
    for _ in range(n_iter):
        lab = _nearest(xs, cent)
        sums = torch.zeros_like(cent).index_add_(0, lab, xs)
        cnt = torch.bincount(lab, minlength=k).unsqueeze(1)
        cent = torch.where(cnt > 0, sums / cnt.clamp(min=1), cent)
    return _nearest(x.float(), cent), cent


def segment_attention_pool(
    h: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, n_groups: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax the (N,) scores within each group and pool (N, d) rows → (n_groups, d), weights.

    A segment softmax with scatter/index ops (no loop over groups or patches); the per-group
    maximum is subtracted for stability and detached (the softmax does not depend on it).
    """
    top = torch.full((n_groups,), -math.inf, dtype=scores.dtype, device=scores.device)
    top = top.scatter_reduce(0, groups, scores.detach(), reduce="amax", include_self=True)
    e = torch.exp(scores - top[groups])
    z = torch.zeros(n_groups, dtype=e.dtype, device=e.device).index_add(0, groups, e)
    w = e / z[groups]
    pooled = h.new_zeros(n_groups, h.shape[1]).index_add(0, groups, w.unsqueeze(1) * h)
    return pooled, w


def patch_caption(*, use_bdca: bool, use_ot: bool, grouping: str) -> str:
    """Ours' patch_score_caption: which quantity patch_scores returns for these options."""
    group = "k-means cluster" if grouping == "kmeans" else "random group"
    within = (
        "the patch's gated-attention weight within its random group"
        if grouping == "random_attn"
        else f"the patch's share of its {group}'s mean (1 / the {group}'s size)"
    )
    if use_bdca:
        return (
            "Cross-attention from the genomics side (BDCA): family g's token attends over the "
            f"pathology tokens, each built from one {group} of patches; panel family g is that "
            f"softmax weight on the patch's token times {within}, so it sums to 1 over the bag."
        )
    if use_ot:
        return (
            "Optimal transport between the pathology tokens (each built from one "
            f"{group} of patches) and the family tokens: panel family g is G × the mass moved "
            f"from the patch's token to family g (its weight in family g's transported token) "
            f"times {within}; it sums to G × the mass family g receives (1 for balanced OT, "
            "typically less for the default unbalanced OT)."
        )
    return (
        "No per-family quantity (BDCA and OT off): the patch's weight in its pathology token, "
        f"{within}; it sums to the number of tokens over the bag."
    )


class Members(NamedTuple):
    """Which patch enters which pathology token with what weight: K (token, patch, weight) rows.

    One row per patch, except when a bag has fewer patches than tokens (a patch then fills
    several tokens). The weights of one token sum to 1 (its mean's 1/size, or its softmax).
    """

    token: torch.Tensor  # (K,) token index in [0, C_p)
    patch: torch.Tensor  # (K,) patch index in [0, N)
    weight: torch.Tensor  # (K,)

    @classmethod
    def of_means(cls, group: torch.Tensor, counts: torch.Tensor) -> Members:
        """Every patch in the mean of its group: weight 1 / group size; counts (C_p, 1)."""
        idx = torch.arange(group.shape[0], device=group.device)
        return cls(group, idx, 1.0 / counts.squeeze(1)[group])

    def scatter(self, token_weights: torch.Tensor, n: int) -> torch.Tensor:
        """(R, C_p) weights per token → (R, N) per patch: Σ over the patch's rows, × its weight."""
        rows = token_weights[:, self.token] * self.weight.to(token_weights.dtype)
        return token_weights.new_zeros(token_weights.shape[0], n).index_add_(1, self.patch, rows)


class Ours(SurvModel):
    """Pathology + genomics survival model with SimMe, BDCA and OT (Zhang et al. 2025).

    `grouping` says how the bag becomes the C_p pathology tokens (the paper: "randomly grouped
    and mapped by a linear layer"; the pooling inside a group is ours to choose):
    - ``random_mean``: random near-equal groups, averaged, then the linear layer (the literal
      reading; with 16k patches the six means differ by ~1-2 % of the patch spread, so the
      tokens are nearly identical and carry only the bag mean);
    - ``random_attn``: the same random groups; each patch goes through the linear layer, then
      gated attention (Ilse et al. 2018) pools each group (softmax within the group; learned);
    - ``kmeans``: C_p k-means clusters of the bag's patch features (morphology groups), each
      averaged then mapped by the linear layer, plus a learned embedding of log(C_p · share of
      the bag), so a rare phenotype's prevalence reaches its token.
    Default ``random_mean``, kept because the evidence did not favour another: on the synthetic
    benchmark at real bag sizes (benchmarks/bench_mil_bags.py, 120 cases, 2k-20k patches, CPU
    budget) no deep model learned the planted risk in the epochs that ran (all three groupings
    and attn_mil at c 0.44-0.54 held out, the linear floor on mean patch features at 0.62), so
    the options could not be told apart; k-means tokens are the only ones that stay distinct
    (spread 1.0 vs 0.03). See docs/mil_bags.md.
    """

    modalities = frozenset({"path", "omic"})
    accepts_missing = True
    # The full model's; each instance sets its own from its options (ablations differ).
    patch_score_caption = patch_caption(use_bdca=True, use_ot=True, grouping="random_mean")

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
        grouping: str = "random_mean",
        kmeans_iters: int = 10,
        kmeans_sample: int = 2048,
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
        if grouping not in GROUPINGS:
            raise ValueError(f"grouping={grouping!r}; choose one of {GROUPINGS}")
        self.grouping = grouping
        self.patch_score_caption = patch_caption(  # type: ignore[misc]
            use_bdca=use_bdca, use_ot=use_ot, grouping=grouping
        )
        self.kmeans_iters, self.kmeans_sample = int(kmeans_iters), int(kmeans_sample)

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
        # Created last, and only for their option, so that random_mean draws the same initial
        # weights as before the option existed.
        if grouping == "random_attn":
            self.group_attention = GatedAttention(d, d, dropout=self.dropout)
        elif grouping == "kmeans":
            self.group_size_fc = nn.Linear(1, d)
        self.missing_path = missing_token(1, d)
        self.missing_omic = missing_token(len(self.omic_sizes), d, salt=1)

    def omic_parameters(self) -> list[nn.Parameter]:
        """Genomics branch: family SNNs + B^g's own q/k/v (BDCA), else the genomic aggregator."""
        names = ("q_g", "k_g", "v_g") if self.use_bdca else ("omic_agg",)
        return [q for n in ("sig_networks", *names) for q in self.get_submodule(n).parameters()]

    def group_patches(self, path: torch.Tensor) -> torch.Tensor:
        """Randomly partition the (N, D) bag into C_p groups and average each → (C_p, D)."""
        return self._group_means(path)[0]

    def _group_means(self, path: torch.Tensor) -> tuple[torch.Tensor, Members]:
        """group_patches' (C_p, D) means and which patch enters which mean with what weight."""
        n, c = path.shape[0], self.n_groups
        # Training draws from the global (seeded) RNG; evaluation uses a fixed seed so that a
        # case's prediction does not depend on what was evaluated before it.
        gen = None if self.training else torch.Generator().manual_seed(self.eval_seed)
        perm = torch.randperm(n, generator=gen).to(path.device)
        if n < c:
            # design: fewer patches than groups → groups reuse patches cyclically (one each).
            picked = perm[torch.arange(c, device=path.device) % n]
            tok = torch.arange(c, device=path.device)
            return path[picked], Members(tok, picked, path.new_ones(c))
        # Position i of the permutation goes to group ⌊i·c/n⌋ (near-equal sizes); scattering the
        # group ids back avoids copying a possibly huge (N, D) bag at evaluation.
        group = torch.empty(n, dtype=torch.long, device=path.device)
        group[perm] = (torch.arange(n, device=path.device) * c) // n
        sums = path.new_zeros(c, path.shape[1]).index_add_(0, group, path)
        counts = torch.bincount(group, minlength=c).to(path.dtype).unsqueeze(1)
        return sums / counts, Members.of_means(group, counts)

    def _eval_generator(self) -> torch.Generator | None:
        """None (global RNG) in training; a generator seeded with eval_seed at evaluation."""
        # Evaluation uses a fixed seed so that a case's prediction does not depend on what was
        # evaluated before it.
        return None if self.training else torch.Generator().manual_seed(self.eval_seed)

    def random_group_ids(self, n: int, device: torch.device) -> torch.Tensor:
        """Group id (N,) of each patch for a random near-equal partition into C_p groups."""
        c = self.n_groups
        perm = torch.randperm(n, generator=self._eval_generator()).to(device)
        group = torch.empty(n, dtype=torch.long, device=device)
        group[perm] = (torch.arange(n, device=device) * c) // n
        return group

    def path_tokens(self, path: torch.Tensor) -> torch.Tensor:
        """The bag (N, D) → the C_p pathology tokens B^p (C_p, d), by `grouping`."""
        return self._path_tokens(path)[0]

    def _path_tokens(self, path: torch.Tensor) -> tuple[torch.Tensor, Members]:
        """path_tokens' (C_p, d) tokens and each patch's weight in its token (Members)."""
        n, c = path.shape[0], self.n_groups
        if self.grouping == "random_mean" or n < c:
            # design: fewer patches than groups → each token is one patch (reused cyclically).
            means, members = self._group_means(path)
            tokens = self.path_fc(means)
            if self.grouping == "kmeans":
                share = path.new_full((c, 1), math.log(c / n))
                tokens = tokens + self.group_size_fc(share)
            return tokens, members
        if self.grouping == "random_attn":
            h = self.path_fc(path)  # (N, d): the linear layer per patch, as ABMIL's fc
            att = self.group_attention
            scores = att.attention_c(att.attention_a(h) * att.attention_b(h)).squeeze(-1)
            group = self.random_group_ids(n, path.device)
            tokens, w = segment_attention_pool(h, scores, group, c)
            return tokens, Members(group, torch.arange(n, device=path.device), w)
        labels, cent = kmeans_labels(
            path.detach(),
            c,
            n_iter=self.kmeans_iters,
            sample=self.kmeans_sample,
            generator=self._eval_generator(),
        )
        counts = torch.bincount(labels, minlength=c).to(path.dtype).unsqueeze(1)
        sums = path.new_zeros(c, path.shape[1]).index_add(0, labels, path)
        # An empty cluster (possible after the subsample fit) is represented by its centroid.
        means = torch.where(counts > 0, sums / counts.clamp(min=1), cent.to(path.dtype))
        share = torch.log(c * counts.clamp(min=0.5) / n)
        return self.path_fc(means) + self.group_size_fc(share), Members.of_means(labels, counts)

    def _cross(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-head scaled dot-product attention softmax(QKᵀ/√d) V, and the softmax."""
        a = torch.softmax(q @ k.T / math.sqrt(self.d), dim=-1)
        return a @ v, a

    def forward(
        self, path: torch.Tensor | None = None, omics: Sequence[torch.Tensor] | None = None
    ) -> ModelOutput:
        """Predict one case's hazards; aux_loss = lambda_sim · (1 − cos) when SimMe is on."""
        self.check_inputs(path, omics)
        return self._run(path, omics)[0]

    def _run(
        self, path: torch.Tensor | None, omics: Sequence[torch.Tensor] | None
    ) -> tuple[ModelOutput, torch.Tensor | None, Members | None]:
        """The forward pass, plus the weights patch_scores reads.

        Returns the output, the (G, C_p) family-by-pathology-token weights of `family_weights`
        (None when BDCA and OT are both off) and the patches' Members (None without a bag).
        """
        members = None
        if path is None:
            b_p = self.missing_path
        else:
            b_p, members = self._path_tokens(path)  # (C_p, d)
        if omics is None:
            b_g = self.missing_omic
        else:
            b_g = torch.stack(
                [net(x) for net, x in zip(self.sig_networks, omics, strict=True)]
            )  # (G, d)

        aux = b_p.new_zeros(())
        if self.use_simme and path is not None and omics is not None:
            # SimMe: global alignment of the mean-pooled token sets.
            aux = self.lambda_sim * (1.0 - F.cosine_similarity(b_p.mean(0), b_g.mean(0), dim=0))

        family_weights = None
        if self.use_bdca:
            b_pg, _ = self._cross(self.q_p(b_p), self.k_g(b_g), self.v_g(b_g))  # (C_p, d)
            # b_gp: family g's query over the C_p tokens; its softmax (G, C_p) is the weight of
            # each pathology token in family g's attended token (patch_scores' quantity).
            b_gp, family_weights = self._cross(self.q_g(b_g), self.k_p(b_p), self.v_p(b_p))
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
            if family_weights is None:  # without BDCA, patches reach families only by transport
                family_weights = plan.T * plan.shape[1]  # (G, C_p): b_pg_hat = that @ b_pg
        else:
            b_pg_hat = b_pg

        h = torch.cat([self.path_agg(b_pg_hat), self.omic_agg(b_gp)], dim=1)  # (1, 2d)
        out = ModelOutput.from_logits(self.classifier(self.mm(h)), aux_loss=aux)
        return out, family_weights, members

    @torch.no_grad()
    def patch_scores(
        self, path: torch.Tensor, omics: Sequence[torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """{"family{g}": (N,)} family g's weight on the patch's token × the patch's weight in it.

        With BDCA and OT both off there is no per-family quantity: {"attention": the patch's
        weight in its token}. The instance's `patch_score_caption` says which one is returned.
        """
        path = self.check_score_inputs(path, omics)
        _, family_weights, members = self._run(path, omics)
        members = cast(Members, members)  # a bag was given
        n = path.shape[0]
        if family_weights is None:
            return {"attention": members.scatter(path.new_ones(1, self.n_groups), n)[0].float()}
        scores = members.scatter(family_weights, n)  # (G, N)
        return {f"family{g}": row.float() for g, row in enumerate(scores)}


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
