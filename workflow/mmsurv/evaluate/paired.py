"""Paired comparison of two models on the same cases, folds and seeds: a CI and a p-value.

On TCGA-sized cohorts the fold-to-fold spread of a c-index (0.03-0.10) is larger than most gaps
between models, so two unpaired mean ± std cannot say which model is better. Both numbers here
pair the models: the bootstrap resamples the same cases for both, the test pairs each fold × seed.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from mmsurv.evaluate.runs import check_unique_runs, is_leaky, leaky_note, seed_mean_risk
from mmsurv.evaluate.stats import (
    SurvivalInputError,
    _check,
    bootstrap_cindex_replicates,
    concordance_index,
)

__all__ = [
    "PAIRED_TEST",
    "PairedDelta",
    "paired_bootstrap_delta",
    "paired_markdown",
    "paired_runs_test",
    "paired_table",
    "write_paired_outputs",
]

# Named in captions: the test and what it pairs.
PAIRED_TEST = "two-sided Wilcoxon signed-rank test over fold × seed runs (scipy, exact for n ≤ 50)"


@dataclass(frozen=True)
class PairedDelta:
    """c-index of A minus B on pooled out-of-fold risks, with a paired percentile bootstrap CI."""

    delta: float
    ci_low: float
    ci_high: float
    level: float
    n_bootstrap: int
    n_valid: int
    seed: int


def paired_bootstrap_delta(
    time: Any,
    event: Any,
    risk_a: Any,
    risk_b: Any,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDelta:
    """c-index(A) − c-index(B) with a CI from resampling the same cases for both (seeded).

    Resamples without a death or a comparable pair are dropped and counted (``n_valid``).
    """
    t, e, ra = _check(time, event, risk_a)
    _, _, rb = _check(time, event, risk_b)
    delta = concordance_index(t, e, ra) - concordance_index(t, e, rb)
    if not 0 < level < 1:
        raise SurvivalInputError(f"level must be in (0, 1), got {level!r}")
    values = bootstrap_cindex_replicates(
        t, e, [ra, rb], lambda cs: cs[0] - cs[1], n_bootstrap=n_bootstrap, seed=seed
    )
    alpha = (1 - level) / 2
    low, high = (
        (float(v) for v in np.quantile(values, [alpha, 1 - alpha]))
        if values
        else (math.nan, math.nan)
    )
    return PairedDelta(float(delta), low, high, float(level), int(n_bootstrap), len(values), seed)


def paired_runs_test(ci_a: Any, ci_b: Any) -> float:
    """Two-sided p of Wilcoxon's signed-rank test on per-run c-index pairs (same fold, seed).

    Runs where either value is NaN (a fold without an event) are left out. Identical values on
    every run give p = 1. With 5 runs the smallest possible p is 2/32 = 0.0625: use several
    seeds for a test that can reach 0.05.
    """
    a = np.asarray(ci_a, dtype=np.float64)
    b = np.asarray(ci_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise SurvivalInputError(
            f"paired runs need two 1-D arrays of one length: {a.shape} {b.shape}"
        )
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    if diff.size == 0:
        return math.nan
    if not diff.any():
        return 1.0
    with warnings.catch_warnings():  # scipy warns when it falls back from the exact law (ties)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        return float(wilcoxon(diff, zero_method="wilcox", alternative="two-sided").pvalue)


PAIRED_COLUMNS = [
    "cohort",
    "model",
    "reference",
    "n_runs",
    "mean_run_delta",
    "p_value",
    "n_cases",
    "pooled_delta",
    "ci_low",
    "ci_high",
    "ci_level",
    "n_bootstrap",
    "n_bootstrap_valid",
    "seed",
    "model_selection",
]


def paired_table(
    per_run: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    reference: str,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Each model against ``reference`` per cohort: paired test over runs, paired bootstrap CI.

    ``per_run``: the per-fold c-index table (cohort, model, fold[, seed], cindex) whose runs are
    paired on every key column present; ``predictions``: the pooled out-of-fold risks, paired on
    the cases both models scored (each case's risk averaged over the training seeds). A
    positive delta means the model beats the reference. ``model_selection`` joins both models'
    policies (it reads best_test_epoch_leaky when either chose epochs on the held-out fold).
    """
    keys = [k for k in ("fold", "seed") if k in per_run.columns]
    check_unique_runs(per_run)
    predictions = seed_mean_risk(predictions)  # one risk per case: its mean over the seeds
    ref_runs = per_run[per_run["model"] == reference]
    ref_preds = predictions[predictions["model"] == reference]
    if ref_runs.empty:
        raise ValueError(
            f"paired comparison: reference model {reference!r} (evaluation.km_model) has no "
            f"results; models with results: {sorted(per_run['model'].unique())}"
        )
    rows = []
    for (cohort, model), runs in per_run.groupby(["cohort", "model"], sort=False):
        if model == reference:
            continue
        ref = ref_runs[ref_runs["cohort"] == cohort]
        pairs = runs.merge(ref, on=["cohort", *keys], suffixes=("", "_ref"))
        a, b = pairs["cindex"].to_numpy(float), pairs["cindex_ref"].to_numpy(float)
        mine = predictions[(predictions["cohort"] == cohort) & (predictions["model"] == model)]
        both = mine.merge(
            ref_preds[ref_preds["cohort"] == cohort][["case_id", "risk"]],
            on="case_id",
            suffixes=("", "_ref"),
        )
        d = paired_bootstrap_delta(
            both["survival_months"].to_numpy(float),
            both["event"].to_numpy(bool),
            both["risk"].to_numpy(float),
            both["risk_ref"].to_numpy(float),
            n_bootstrap=n_bootstrap,
            seed=seed,
            level=level,
        )
        keep = np.isfinite(a) & np.isfinite(b)
        rows.append(
            {
                "cohort": cohort,
                "model": model,
                "reference": reference,
                "n_runs": int(keep.sum()),
                "mean_run_delta": float(np.mean(a[keep] - b[keep])) if keep.any() else math.nan,
                "p_value": paired_runs_test(a, b),
                "n_cases": len(both),
                "pooled_delta": d.delta,
                "ci_low": d.ci_low,
                "ci_high": d.ci_high,
                "ci_level": d.level,
                "n_bootstrap": d.n_bootstrap,
                "n_bootstrap_valid": d.n_valid,
                "seed": d.seed,
                "model_selection": _policies(runs, ref),
            }
        )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def _policies(*frames: pd.DataFrame) -> str:
    """Distinct model_selection values of the frames' runs, '; '-joined ('' without the column)."""
    values = {
        str(v) for f in frames if "model_selection" in f.columns for v in f["model_selection"]
    }
    return "; ".join(sorted(values))


def paired_markdown(
    table: pd.DataFrame, alpha: float = 0.05, per_run: pd.DataFrame | None = None
) -> str:
    """The paired table as Markdown with its test named and significant rows marked *.

    With ``per_run`` (the per-run c-index table) it ends with the leaky note when any run chose
    its epoch on the held-out fold (best_test_epoch_leaky).
    """
    head = (
        "| cohort | model | vs | runs | mean Δ over runs | p | cases | pooled Δ c-index "
        "[CI] |\n|---|---|---|---:|---:|---:|---:|---|\n"
    )
    body = "".join(
        f"| {r.cohort} | {r.model} | {r.reference} | {r.n_runs} | {r.mean_run_delta:+.3f} | "
        f"{r.p_value:.3g}{' *' if r.p_value < alpha else ''} | {r.n_cases} | "
        f"{r.pooled_delta:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] |\n"
        for r in table.itertuples()
    )
    level = f"{table['ci_level'].iloc[0]:.0%}" if len(table) else "95%"
    notes = (
        f"\nΔ = model − reference (positive: the model is better). p: {PAIRED_TEST}; "
        f"* p < {alpha}. With 5 runs (5 folds, one seed) no rank test can reach p < 0.05 "
        f"(smallest p 0.0625): repeated seeds are needed for that. Pooled Δ: c-index of the pooled "
        f"out-of-fold risks on the cases both models scored, {level} percentile bootstrap CI, "
        "the same resampled cases for both models; with several training seeds each case's "
        "risk is its mean over the seeds.\n"
    )
    leaky = leaky_note(per_run) if per_run is not None else None
    if leaky is None and "model_selection" in table.columns and is_leaky(table):
        leaky = "leaky: epochs chosen on the held-out fold (best_test_epoch_leaky)"
    return head + body + notes + (f"\n{leaky}\n" if leaky else "")


def write_paired_outputs(
    prediction_files: Sequence[str | os.PathLike[str]],
    *,
    folds_tsv: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    out_md: str | os.PathLike[str],
    reference: str,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Rule paired_table: every model vs the reference (KM) model, as CSV and Markdown."""
    from mmsurv.evaluate.stage import read_predictions
    from mmsurv.io import atomic_path, write_text_atomic

    per_run = pd.read_csv(
        folds_tsv, sep="\t", dtype={"cohort": str, "model": str, "model_selection": str}
    )
    table = paired_table(
        per_run,
        read_predictions(prediction_files),
        reference=reference,
        n_bootstrap=n_bootstrap,
        seed=seed,
        level=level,
    )
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    write_text_atomic(out_md, paired_markdown(table, per_run=per_run))
    return table
