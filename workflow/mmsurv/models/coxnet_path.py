"""coxnet_path: elastic-net Cox on mean-pooled patch features, the pathology models' floor.

Inputs: each case's bag (bags.h5, as the pathology models read it) averaged over its patches,
one feature-dim vector per case, standardised with the training cases' statistics.
"""

from __future__ import annotations

from mmsurv.models._linear import LinearFloor
from mmsurv.models._registry import register_floor


@register_floor
def coxnet_path(
    *,
    l1_ratio: float = 0.5,
    n_alphas: int = 30,
    alpha_min_ratio: float = 0.01,
    inner_folds: int = 5,
    inner_repeats: int = 3,
    max_iter: int = 100_000,
) -> LinearFloor:
    """scikit-survival Coxnet (elastic net) on the mean patch feature; alpha by inner CV."""
    return LinearFloor(
        name="coxnet_path",
        features="path",
        penalty="elastic_net",
        l1_ratio=l1_ratio,
        n_alphas=n_alphas,
        alpha_min_ratio=alpha_min_ratio,
        inner_folds=inner_folds,
        inner_repeats=inner_repeats,
        max_iter=max_iter,
    )
