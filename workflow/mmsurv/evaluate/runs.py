"""Runs = fold x seed (training.seeds): their keys, how many, seed-averaged risks, leaky notes.

Every per-run table (cindex_folds.tsv, metrics_folds.tsv) has one row per cohort x model x fold
x seed, and mean ± std are over all of them. Pooled out-of-fold quantities (pooled c-index and
its bootstrap, the KM figure, the paired bootstrap) need one risk per case: each case is scored
once per seed (by the fold that held it out), and its risk there is the mean over the seeds of
the raw risks. The raw scale is kept (no within-run ranking): a model's risk has the same scale
in every seed of a fold (deep models: -sum S(t) in [-n_bins, 0]; linear floors: the linear
predictor on the same training-fold features), so the mean is an ensemble of the seeds, and
with one seed it is that seed's risk exactly, as before training.seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mmsurv.config import LEAKY_SELECTION

__all__ = [
    "DEFAULT_SEED",
    "LEAKY_SELECTION",
    "RUN_KEYS",
    "check_unique_runs",
    "is_leaky",
    "leaky_note",
    "runs_phrase",
    "seed_mean_risk",
    "with_seed",
]

RUN_KEYS = ("cohort", "model", "fold", "seed")
# Predictions written before training.seeds have no seed column: one seed, read as this one.
DEFAULT_SEED = 0


def with_seed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with an int ``seed`` column (DEFAULT_SEED where it has none: one seed)."""
    if "seed" in frame.columns:
        return frame
    return frame.assign(seed=DEFAULT_SEED)


def check_unique_runs(per_run: pd.DataFrame, what: str = "per-fold c-index table") -> None:
    """Refuse a per-run table with two rows for one cohort x model x fold x seed."""
    keys = [k for k in RUN_KEYS if k in per_run.columns]
    dup = per_run.duplicated(keys, keep=False)
    if dup.any():
        first = list(per_run.loc[dup, keys].to_dict("records")[0].values())
        raise ValueError(
            f"{what} has {int(dup.sum())} rows for repeated ({', '.join(keys)}), e.g. {first}; "
            "each fold x seed run must appear once"
        )


def runs_phrase(per_run: pd.DataFrame, *, long: bool = False) -> str:
    """'5 folds x 3 seeds = 15 runs' per cohort x model ('lo–hi' when they differ).

    ``per_run``: a per-run table or predictions (one row per case; runs are counted once).
    ``long``: '5 cross-validation folds x 3 training seeds = 15 runs'.
    """
    group = ["cohort", "model"] if "cohort" in per_run.columns else ["model"]
    frame = with_seed(per_run).drop_duplicates([*group, "fold", "seed"])  # predictions: per case
    g = frame.groupby(group)
    folds, seeds, runs = g["fold"].nunique(), g["seed"].nunique(), g.size()

    def span(s: pd.Series) -> str:
        lo, hi = (int(s.min()), int(s.max())) if len(s) else (0, 0)
        return str(hi) if lo == hi else f"{lo}–{hi}"

    n_seeds = span(seeds)
    fold_word, seed_word = (
        ("cross-validation folds", "training seed") if long else ("folds", "seed")
    )
    plural = "" if n_seeds == "1" else "s"
    return f"{span(folds)} {fold_word} x {n_seeds} {seed_word}{plural} = {span(runs)} runs"


def is_leaky(frame: pd.DataFrame) -> bool:
    """Whether any run of ``frame`` (predictions or per-run table) chose its epoch leakily."""
    if "model_selection" not in frame.columns:
        return False
    return bool(frame["model_selection"].astype(str).str.contains(LEAKY_SELECTION).any())


def leaky_note(per_run: pd.DataFrame, decimals: int = 3) -> str | None:
    """The 'leaky' note: which models chose epochs on the held-out fold, and the gap to last epoch.

    ``per_run``: cohort, model, fold, seed, cindex, model_selection and, when training recorded
    it, last_epoch_cindex (the held-out c-index after the last epoch). None when nothing is leaky.
    """
    if not is_leaky(per_run):
        return None
    rows = per_run[per_run["model_selection"].astype(str).str.contains(LEAKY_SELECTION)]
    models = ", ".join(sorted(set(rows["model"].astype(str))))
    head = (
        f"leaky: epochs chosen on the held-out fold (model_selection {LEAKY_SELECTION}) for "
        f"{models}; their c-indices are inflated"
    )
    if "last_epoch_cindex" not in rows.columns or "cindex" not in rows.columns:
        return head + "; the last-epoch c-index was not recorded"
    both = rows[["cindex", "last_epoch_cindex"]].astype(float).dropna()
    if both.empty:
        return head + "; no run has both c-indices defined"
    last, chosen = float(both["last_epoch_cindex"].mean()), float(both["cindex"].mean())
    return (
        f"{head}; last-epoch mean c-index {last:.{decimals}f}, selected {chosen:.{decimals}f}, "
        f"gap {chosen - last:+.{decimals}f} (over {len(both)} runs)"
    )


def seed_mean_risk(predictions: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """One row per cohort x model x case: its risk averaged over the seeds (see the module doc).

    Keeps case_id, fold, survival_months, event, model, cohort, model_selection, encoder_weights
    (and ``extra`` columns) from the case's first seed, adds ``n_seeds``. A case held out by
    different folds in different seeds, or scored twice in one seed, is refused.
    """
    preds = with_seed(predictions)
    key = ["cohort", "model", "case_id"]
    twice = preds.duplicated([*key, "seed"], keep=False)
    if twice.any():
        first = list(preds.loc[twice, [*key, "seed"]].to_dict("records")[0].values())
        raise ValueError(
            f"predictions score (cohort, model, case_id, seed) {first} more than once; each "
            "case must be scored once per seed, by the fold that held it out"
        )
    folds = preds.groupby(key)["fold"].nunique()
    if (folds > 1).any():
        raise ValueError(
            f"case(s) {list(folds[folds > 1].index[:5])} are held out by different folds in "
            "different seeds; the folds (splits.tsv) must not depend on the training seed"
        )
    keep = [
        c
        for c in (
            "fold",
            "survival_months",
            "event",
            "model_selection",
            "encoder_weights",
            *extra,
        )
        if c in preds.columns
    ]
    grouped = preds.groupby(key, sort=False)
    out = grouped[keep].first()
    out["risk"] = grouped["risk"].mean()
    out["n_seeds"] = grouped["seed"].nunique().astype(np.int64)
    return out.reset_index()
