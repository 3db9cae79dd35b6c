"""coxnet_omic: elastic-net Cox on the family genes, the genomics models' linear floor.

Deep genomics models score c ~ 0.45-0.59 on real TCGA genomics, about what a plain elastic-net
Cox scores (0.575 on the published MCAT BLCA folds, benchmarks/results/coxnet_inner_cv.md); Table 1
shows it beside them. Inputs: the omics columns of the gene families,
each once, standardised with the training cases' statistics (as the deep models get them).
"""

from __future__ import annotations

from mmsurv.models._linear import LinearFloor
from mmsurv.models._registry import register_floor


@register_floor
def coxnet_omic(
    *,
    l1_ratio: float = 0.5,
    n_alphas: int = 30,
    alpha_min_ratio: float = 0.01,
    inner_folds: int = 5,
    inner_repeats: int = 3,
    max_iter: int = 100_000,
) -> LinearFloor:
    """scikit-survival Coxnet (elastic net, `l1_ratio`) on the genes; alpha by inner CV."""
    return LinearFloor(
        name="coxnet_omic",
        features="omic",
        penalty="elastic_net",
        l1_ratio=l1_ratio,
        n_alphas=n_alphas,
        alpha_min_ratio=alpha_min_ratio,
        inner_folds=inner_folds,
        inner_repeats=inner_repeats,
        max_iter=max_iter,
    )
