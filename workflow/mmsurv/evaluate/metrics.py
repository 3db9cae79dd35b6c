"""Beyond the per-fold c-index: time-dependent AUC, integrated Brier score, bootstrap CI.

Conventions as :mod:`evaluate.stats`: ``event`` is boolean (True = death observed), ``time`` is in
months and ``risk`` is higher for worse. Predicted survival is the discrete-time model's step
curve: ``surv[:, j]`` is S at the end of bin j, i.e. at ``bin_edges[j + 1]``, so
S(t) = 1 before ``bin_edges[1]``, S(t) = ``surv[:, j]`` on ``[bin_edges[j + 1], bin_edges[j + 2])``
and the last value after the last edge (:func:`survival_at`).

The array functions are pure: they validate, compute with scikit-survival, and return NaN with a
note (never raise) when a metric is undefined for the data at hand, e.g. a horizon outside the
follow-up of a test fold. :func:`evaluate_predictions` applies them to pooled out-of-fold
predictions: per fold, the inverse-probability-of-censoring weights are estimated on the
training cases of that fold (the cases of the other folds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sksurv.metrics import (
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.util import Surv

from mmsurv.evaluate.runs import seed_mean_risk, with_seed
from mmsurv.evaluate.stats import (
    SurvivalInputError,
    _as_bool,
    _as_finite_float,
    bootstrap_cindex_replicates,
    concordance_index,
)

__all__ = [
    "BootstrapCI",
    "MetricValue",
    "bootstrap_cindex",
    "default_horizons",
    "evaluable_range",
    "evaluate_predictions",
    "integrated_brier",
    "survival_at",
    "surv_columns",
    "time_dependent_auc",
]

DEFAULT_HORIZON_QUANTILES = (0.25, 0.5, 0.75)
SURV_TOL = 1e-6  # slack for float round-off when checking that S is a non-increasing probability


@dataclass(frozen=True)
class MetricValue:
    """One metric value; ``value`` is NaN when undefined and ``note`` then says why."""

    value: float
    note: str = ""


@dataclass(frozen=True)
class BootstrapCI:
    """Point estimate and percentile bootstrap interval of a statistic."""

    estimate: float
    low: float
    high: float
    level: float
    n_bootstrap: int
    n_valid: int  # resamples where the statistic was defined (the others are dropped)
    seed: int


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _time_event(time: Any, event: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated (time >= 0 float64, event bool) of equal length for ``what`` (train/test)."""
    t = _as_finite_float(time, f"{what}_time")
    e = _as_bool(event, f"{what}_event")
    if len(t) != len(e):
        raise SurvivalInputError(
            f"{what}_time and {what}_event must have the same length, got {len(t)} and {len(e)}"
        )
    if (t < 0).any():
        i = int(np.flatnonzero(t < 0)[0])
        raise SurvivalInputError(f"{what}_time must be >= 0; found {float(t[i])!r} at index {i}")
    if len(t) < 2:
        raise SurvivalInputError(f"Need a minimum of two {what} samples, got {len(t)}")
    return t, e


def _check_curves(surv: Any, bin_edges: Any, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validated survival step curves (n x T, non-increasing in [0, 1]) and their T + 1 edges."""
    s = np.asarray(surv, dtype=np.float64)
    edges = np.asarray(bin_edges, dtype=np.float64)
    if s.ndim != 2:
        raise SurvivalInputError(f"surv must be 2-dimensional (cases x bins), got shape {s.shape}")
    if edges.ndim != 1 or len(edges) != s.shape[1] + 1:
        raise SurvivalInputError(
            f"bin_edges must hold one more value than surv has bins ({s.shape[1] + 1}), "
            f"got shape {edges.shape}"
        )
    if not np.isfinite(edges).all() or (np.diff(edges) < 0).any():
        raise SurvivalInputError(f"bin_edges must be finite and non-decreasing, got {edges}")
    if not np.isfinite(s).all():
        raise SurvivalInputError("surv must be finite; found NaN or infinite values")
    if (s < -SURV_TOL).any() or (s > 1 + SURV_TOL).any():
        raise SurvivalInputError(
            f"surv must be probabilities in [0, 1], got range [{s.min():g}, {s.max():g}]"
        )
    if s.shape[1] > 1 and (np.diff(s, axis=1) > SURV_TOL).any():
        i = int(np.flatnonzero((np.diff(s, axis=1) > SURV_TOL).any(axis=1))[0])
        raise SurvivalInputError(
            f"surv must be non-increasing over bins (S at the end of bins 0..T-1, in order); "
            f"case {i} has {s[i].round(4).tolist()}"
        )
    if n is not None and s.shape[0] != n:
        raise SurvivalInputError(f"surv has {s.shape[0]} rows but there are {n} test cases")
    return np.clip(s, 0.0, 1.0), edges


def _fmt(x: float) -> str:
    """Short number for notes: 12.3456 -> '12.35'."""
    return f"{x:.4g}"


# --------------------------------------------------------------------------------------------
# survival curves and horizons
# --------------------------------------------------------------------------------------------


def survival_at(surv: Any, bin_edges: Any, times: Any) -> np.ndarray:
    """S(t) of each case at ``times`` (cases x times) from the step curve at the bin ends.

    Right-continuous steps: S(t) = 1 for t < bin_edges[1], surv[:, j] for
    bin_edges[j + 1] <= t < bin_edges[j + 2], and surv[:, -1] from the last edge on.
    """
    s, edges = _check_curves(surv, bin_edges)
    t = _as_finite_float(np.atleast_1d(np.asarray(times, dtype=np.float64)), "times")
    idx = np.searchsorted(edges[1:], t, side="right")  # number of bin ends <= t
    padded = np.concatenate([np.ones((s.shape[0], 1)), s], axis=1)
    return padded[:, idx]


def surv_columns(columns: Sequence[str]) -> list[str]:
    """The ``surv_<j>`` columns in bin order (numeric, so surv_10 follows surv_9)."""
    found = [c for c in columns if c.startswith("surv_") and c[5:].isdigit()]
    cols = sorted(found, key=lambda c: int(c[5:]))
    if not cols or [int(c[5:]) for c in cols] != list(range(len(cols))):
        raise SurvivalInputError(
            f"predictions need columns surv_0..surv_{{T-1}} (S at the end of each bin); got {cols}"
        )
    return cols


def default_horizons(
    time: Any, event: Any, quantiles: Sequence[float] = DEFAULT_HORIZON_QUANTILES
) -> np.ndarray:
    """Horizons (months) at ``quantiles`` of the observed death times (numpy's linear rule)."""
    t, e = _time_event(time, event, "cohort")
    q = np.asarray(quantiles, dtype=np.float64)
    if q.ndim != 1 or len(q) == 0 or ((q <= 0) | (q >= 1)).any():
        raise SurvivalInputError(f"quantiles must be a non-empty list in (0, 1), got {quantiles}")
    if not e.any():
        raise SurvivalInputError("All samples are censored: no death times to take quantiles of")
    return np.quantile(t[e], q)


def evaluable_range(train_time: Any, test_time: Any) -> tuple[float, float]:
    """[lo, hi): the times at which test cases can be scored with training-fold IPCW.

    lo is the first test time; hi is the last test time after censoring the test follow-up at the
    last training time (scikit-survival needs times < the last test time, and the censoring
    distribution is unknown beyond the training follow-up).
    """
    train = _as_finite_float(train_time, "train_time")
    test = _as_finite_float(test_time, "test_time")
    if len(train) == 0 or len(test) == 0:
        raise SurvivalInputError("train_time and test_time must not be empty")
    return float(test.min()), float(np.minimum(test, train.max()).max())


def _censor_at(t: np.ndarray, e: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Administratively censor follow-up at ``tau`` (no effect on any term at times < tau)."""
    return np.minimum(t, tau), e & (t <= tau)


# --------------------------------------------------------------------------------------------
# metrics on one train/test split
# --------------------------------------------------------------------------------------------


def time_dependent_auc(
    train_time: Any,
    train_event: Any,
    test_time: Any,
    test_event: Any,
    test_surv: Any,
    bin_edges: Any,
    horizons: Any,
) -> list[MetricValue]:
    """Cumulative/dynamic AUC (sksurv, Uno's IPCW from the training cases) at each horizon.

    The score at horizon h is the predicted probability of death by h, 1 - S(h), from the step
    curve. A horizon outside :func:`evaluable_range`, or with no test death by then, gives NaN and
    a note; it does not raise. When every test case has the same S(h) (e.g. h before the first
    bin end) the AUC is 0.5 and the note says it carries no information.
    """
    tr_t, tr_e = _time_event(train_time, train_event, "train")
    te_t, te_e = _time_event(test_time, test_event, "test")
    s, edges = _check_curves(test_surv, bin_edges, len(te_t))
    hs = _as_finite_float(np.atleast_1d(np.asarray(horizons, dtype=np.float64)), "horizons")
    if (hs <= 0).any():
        raise SurvivalInputError(f"horizons must be > 0 months, got {hs.tolist()}")
    lo, hi = evaluable_range(tr_t, te_t)
    tau = float(tr_t.max())
    ct, ce = _censor_at(te_t, te_e, tau)
    y_train = Surv.from_arrays(event=tr_e, time=tr_t)
    y_test = Surv.from_arrays(event=ce, time=ct)
    out = []
    for h in hs:
        if not lo <= h < hi:
            out.append(
                MetricValue(
                    math.nan,
                    f"horizon {_fmt(h)} outside the evaluable follow-up "
                    f"[{_fmt(lo)}, {_fmt(hi)}) of the test cases",
                )
            )
            continue
        if not (ce & (ct <= h)).any():
            out.append(MetricValue(math.nan, f"no test death by {_fmt(h)} months"))
            continue
        estimate = 1.0 - survival_at(s, edges, [h])
        try:
            scores, _ = cumulative_dynamic_auc(y_train, y_test, estimate, [h])
        except ValueError as err:
            out.append(MetricValue(math.nan, f"AUC({_fmt(h)}) undefined: {err}"))
            continue
        note = ""
        if np.ptp(estimate) == 0:
            note = f"all predicted S({_fmt(h)}) are equal: AUC 0.5 carries no information"
        out.append(MetricValue(float(scores[0]), note))
    return out


def integrated_brier(
    train_time: Any,
    train_event: Any,
    test_time: Any,
    test_event: Any,
    test_surv: Any,
    bin_edges: Any,
    grid: Any,
) -> MetricValue:
    """Integrated Brier score (sksurv, IPCW from the training cases) of the step curves on ``grid``.

    ``grid`` (months, >= 2 distinct points) must lie in :func:`evaluable_range`; otherwise the
    value is NaN with a note. Lower is better; 0.25 is what S = 0.5 for everyone scores.
    """
    tr_t, tr_e = _time_event(train_time, train_event, "train")
    te_t, te_e = _time_event(test_time, test_event, "test")
    s, edges = _check_curves(test_surv, bin_edges, len(te_t))
    g = np.unique(_as_finite_float(np.atleast_1d(np.asarray(grid, dtype=np.float64)), "grid"))
    if len(g) < 2:
        raise SurvivalInputError(f"grid needs at least two distinct times, got {g.tolist()}")
    lo, hi = evaluable_range(tr_t, te_t)
    if g[0] < lo or g[-1] >= hi:
        return MetricValue(
            math.nan,
            f"IBS grid [{_fmt(g[0])}, {_fmt(g[-1])}] outside the evaluable follow-up "
            f"[{_fmt(lo)}, {_fmt(hi)}) of the test cases",
        )
    ct, ce = _censor_at(te_t, te_e, float(tr_t.max()))
    try:
        value = integrated_brier_score(
            Surv.from_arrays(event=tr_e, time=tr_t),
            Surv.from_arrays(event=ce, time=ct),
            survival_at(s, edges, g),
            g,
        )
    except ValueError as err:
        return MetricValue(math.nan, f"IBS undefined: {err}")
    return MetricValue(float(value))


def bootstrap_cindex(
    time: Any,
    event: Any,
    risk: Any,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> BootstrapCI:
    """c-index with a percentile bootstrap CI (cases resampled with replacement, seeded).

    Resamples without a comparable pair or without a death are dropped and counted
    (``n_valid``); the interval is NaN when none is left.
    """
    estimate = concordance_index(time, event, risk)  # validates; raises when undefined
    if not 0 < level < 1:
        raise SurvivalInputError(f"level must be in (0, 1), got {level!r}")
    t = np.asarray(time, dtype=np.float64)
    e = _as_bool(event, "event")
    r = np.asarray(risk, dtype=np.float64)
    values = bootstrap_cindex_replicates(
        t, e, [r], lambda cs: cs[0], n_bootstrap=n_bootstrap, seed=seed
    )
    alpha = (1 - level) / 2
    low, high = (
        (float(v) for v in np.quantile(values, [alpha, 1 - alpha]))
        if values
        else (math.nan, math.nan)
    )
    return BootstrapCI(estimate, low, high, float(level), int(n_bootstrap), len(values), int(seed))


# --------------------------------------------------------------------------------------------
# pooled out-of-fold predictions
# --------------------------------------------------------------------------------------------

# metrics_folds.tsv: one row per cohort x model x fold x seed (a run) x metric x horizon
PER_FOLD_COLUMNS = ["cohort", "model", "fold", "seed", "metric", "horizon", "value", "note"]
SUMMARY_COLUMNS = [
    "cohort",
    "model",
    "metric",
    "horizon",
    "horizon_source",
    "value",
    "std",
    "ddof",
    "n_folds",
    "n_folds_defined",
    "ci_low",
    "ci_high",
    "ci_level",
    "n_bootstrap",
    "n_bootstrap_valid",
    "seed",
    "n_cases",
    "n_seeds",
    "model_selection",
    "note",
]


def _cohort_cases(preds: pd.DataFrame, cohort: str) -> pd.DataFrame:
    """One row per case of the cohort (case_id, fold, time, event), equal across models."""
    sub = preds[preds["cohort"] == cohort]
    cases = sub[["case_id", "fold", "survival_months", "event"]].drop_duplicates()
    dup = cases["case_id"].duplicated(keep=False)
    if dup.any():
        raise ValueError(
            f"cohort {cohort}: case(s) {sorted(cases.loc[dup, 'case_id'].unique())[:5]} have "
            "different fold, survival_months or event in different models' predictions"
        )
    return cases.reset_index(drop=True)


def _ibs_grid(
    cases: pd.DataFrame, ibs_range: Sequence[float] | None, n_points: int
) -> tuple[np.ndarray | None, str]:
    """The cohort's IBS grid: within every fold's evaluable range (and ``ibs_range`` if given)."""
    t = cases["survival_months"].to_numpy(float)
    folds = cases["fold"].to_numpy()
    ranges = [evaluable_range(t[folds != k], t[folds == k]) for k in np.unique(folds)]
    lo = max(r[0] for r in ranges)
    hi = min(r[1] for r in ranges)
    a, b = (lo, hi) if ibs_range is None else (max(lo, ibs_range[0]), min(hi, ibs_range[1]))
    b = min(b, float(np.nextafter(hi, -np.inf)))  # sksurv needs grid < last test time
    clipped = (
        ""
        if ibs_range is None or (a, b) == tuple(ibs_range)
        else f" (configured {list(ibs_range)}, clipped to what every fold can evaluate)"
    )
    if not a < b:
        return None, (
            f"no common evaluable follow-up for the IBS: folds allow [{_fmt(lo)}, {_fmt(hi)})"
            + ("" if ibs_range is None else f", configured {list(ibs_range)}")
        )
    note = f"IBS over {_fmt(a)}–{_fmt(b)} months, {n_points} equally spaced times{clipped}"
    return np.linspace(a, b, n_points), note


def _mean_std(values: Sequence[float], ddof: int) -> tuple[float, float, int]:
    """Mean and std (``ddof``) of the finite values and how many there are."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan, 0
    std = float(v.std(ddof=ddof)) if len(v) > ddof else math.nan
    return float(v.mean()), std, len(v)


def _join_notes(notes: Sequence[str]) -> str:
    """Distinct non-empty notes, in order of first appearance, '; '-joined."""
    return "; ".join(dict.fromkeys(n for n in notes if n))


def evaluate_predictions(
    predictions: pd.DataFrame,
    bin_edges: Mapping[tuple[str, str, int], Sequence[float]],
    *,
    horizons: Sequence[float] | None = None,
    horizon_quantiles: Sequence[float] = DEFAULT_HORIZON_QUANTILES,
    ibs_range: Sequence[float] | None = None,
    ibs_points: int = 100,
    n_bootstrap: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
    ddof: int = 1,
    model_order: Sequence[str] | None = None,
    cohort_order: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """td-AUC, IBS (per fold, then mean ± std) and the pooled c-index with a bootstrap CI.

    ``predictions`` are pooled out-of-fold predictions (one row per cohort × model × seed ×
    case, with surv_0..surv_{T-1}); ``bin_edges[(cohort, model, fold, seed)]`` (or, for one
    seed, ``[(cohort, model, fold)]``) are that run's T + 1 edges. For fold k the training
    cases are the cohort's cases of the other folds. td-AUC and IBS are computed per fold x
    seed run and averaged over all runs; the pooled c-index uses each case's risk averaged
    over the seeds (:func:`runs.seed_mean_risk`). ``horizons``
    (months) apply to every cohort; when empty or None, each cohort uses ``horizon_quantiles``
    of its death times. Returns (per-fold values, summary) with the columns PER_FOLD_COLUMNS
    and SUMMARY_COLUMNS; undefined values are NaN with the reason in ``note``.
    """
    need = ["case_id", "fold", "risk", "survival_months", "event", "model", "cohort"]
    missing = [c for c in need if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {missing}")
    surv_columns(list(predictions.columns))
    if ibs_points < 2:
        raise SurvivalInputError(f"ibs_points must be >= 2, got {ibs_points}")
    if ibs_range is not None and not (len(ibs_range) == 2 and 0 <= ibs_range[0] < ibs_range[1]):
        raise SurvivalInputError(f"ibs_range must be [start, end], 0 <= start < end: {ibs_range}")
    predictions = with_seed(predictions)
    cohorts = list(cohort_order) if cohort_order else sorted(predictions["cohort"].unique())
    fold_rows: list[dict[str, Any]] = []
    summary_rows: list[dict[str, Any]] = []
    for cohort in cohorts:
        cases = _cohort_cases(predictions, cohort)
        if horizons:
            hz = np.asarray(horizons, dtype=np.float64)
            sources = ["configured"] * len(hz)
        else:
            hz = default_horizons(cases["survival_months"], cases["event"], horizon_quantiles)
            sources = [f"q{q:g} of death times" for q in horizon_quantiles]
        grid, grid_note = _ibs_grid(cases, ibs_range, ibs_points)
        sub = predictions[predictions["cohort"] == cohort]
        present = sub["model"].unique().tolist()
        models = [m for m in model_order if m in present] if model_order else sorted(present)
        for model in models:
            folds, rows = _evaluate_model(
                sub[sub["model"] == model], bin_edges, hz, grid, grid_note
            )
            fold_rows += rows
            summary_rows += _summarize_model(
                sub[sub["model"] == model],
                folds,
                rows,
                hz,
                sources,
                ibs_note=grid_note if grid is not None else "",
                ddof=ddof,
                n_bootstrap=n_bootstrap,
                seed=seed,
                ci_level=ci_level,
            )
    per_fold = pd.DataFrame(fold_rows, columns=PER_FOLD_COLUMNS)
    summary = pd.DataFrame(summary_rows).reindex(columns=SUMMARY_COLUMNS)
    return per_fold, summary


def _evaluate_model(
    mp: pd.DataFrame,
    bin_edges: Mapping[tuple[Any, ...], Sequence[float]],
    hz: np.ndarray,
    grid: np.ndarray | None,
    grid_note: str,
) -> tuple[list[tuple[int, int]], list[dict[str, Any]]]:
    """Per-run (fold x seed) td-AUC at ``hz`` and IBS on ``grid`` of one cohort × model."""
    cohort, model = str(mp["cohort"].iloc[0]), str(mp["model"].iloc[0])
    scols = surv_columns(list(mp.columns))
    runs = sorted({(int(k), int(s)) for k, s in zip(mp["fold"], mp["seed"], strict=True)})
    rows: list[dict[str, Any]] = []
    for k, seed in runs:
        edges = bin_edges.get((cohort, model, k, seed), bin_edges.get((cohort, model, k)))
        if edges is None:
            raise ValueError(f"no bin edges for cohort={cohort} model={model} fold={k} seed={seed}")
        ms = mp[mp["seed"] == seed]
        test, train = ms[ms["fold"] == k], ms[ms["fold"] != k]
        args = (
            train["survival_months"].to_numpy(float),
            train["event"].to_numpy(bool),
            test["survival_months"].to_numpy(float),
            test["event"].to_numpy(bool),
            test[scols].to_numpy(float),
            edges,
        )
        try:
            aucs = time_dependent_auc(*args, hz)
            ibs = (
                integrated_brier(*args, grid)
                if grid is not None
                else MetricValue(math.nan, grid_note)
            )
        except SurvivalInputError as err:
            where = f"cohort={cohort} model={model} fold={k} seed={seed}"
            raise SurvivalInputError(f"{where}: {err}") from err
        base = {"cohort": cohort, "model": model, "fold": k, "seed": seed}
        for h, mv in zip(hz, aucs, strict=True):
            rows.append({**base, "metric": "td_auc", "horizon": float(h), **_mv(mv)})
        rows.append({**base, "metric": "ibs", "horizon": math.nan, **_mv(ibs)})
    return runs, rows


def _summarize_model(
    mp: pd.DataFrame,
    folds: list[tuple[int, int]],
    rows: list[dict[str, Any]],
    hz: np.ndarray,
    sources: Sequence[str],
    *,
    ibs_note: str,
    ddof: int,
    n_bootstrap: int,
    seed: int,
    ci_level: float,
) -> list[dict[str, Any]]:
    """Summary rows (SUMMARY_COLUMNS) of one cohort × model from its per-run rows.

    ``folds``: its (fold, seed) runs; n_folds counts them (the mean ± std are over all runs).
    """
    pooled = seed_mean_risk(mp)  # one row per case, its risk averaged over the seeds
    base = {
        "cohort": str(mp["cohort"].iloc[0]),
        "model": str(mp["model"].iloc[0]),
        "n_cases": len(pooled),
        "n_seeds": int(mp["seed"].nunique()),
        "model_selection": "; ".join(
            sorted(set(mp["model_selection"].astype(str))) if "model_selection" in mp else []
        ),
        "ddof": ddof,
        "n_folds": len(folds),
    }
    boot = bootstrap_cindex(
        pooled["survival_months"].to_numpy(float),
        pooled["event"].to_numpy(bool),
        pooled["risk"].to_numpy(float),
        n_bootstrap=n_bootstrap,
        seed=seed,
        level=ci_level,
    )
    out = [
        {
            **base,
            "metric": "cindex_pooled",
            "value": boot.estimate,
            "ci_low": boot.low,
            "ci_high": boot.high,
            "ci_level": boot.level,
            "n_bootstrap": boot.n_bootstrap,
            "n_bootstrap_valid": boot.n_valid,
            "seed": boot.seed,
            "note": "pooled out-of-fold risk"
            + (" (each case's mean over the seeds)" if base["n_seeds"] > 1 else "")
            + "; percentile bootstrap over cases",
        }
    ]
    groups = [("td_auc", float(h), src) for h, src in zip(hz, sources, strict=True)]
    groups.append(("ibs", math.nan, ""))
    for metric, h, src in groups:
        sel = [r for r in rows if r["metric"] == metric and (metric == "ibs" or r["horizon"] == h)]
        mean, std, n_def = _mean_std([r["value"] for r in sel], ddof)
        out.append(
            {
                **base,
                "metric": metric,
                "horizon": h,
                "horizon_source": src,
                "value": mean,
                "std": std,
                "n_folds_defined": n_def,
                "note": _join_notes(
                    [ibs_note if metric == "ibs" else ""]
                    + [_run_label(r, base["n_seeds"]) + f": {r['note']}" for r in sel if r["note"]]
                ),
            }
        )
    return out


def _run_label(row: Mapping[str, Any], n_seeds: int) -> str:
    """'fold 2' for a model trained with one seed, else 'fold 2 seed 3'."""
    return f"fold {row['fold']}" + (f" seed {row['seed']}" if n_seeds > 1 else "")


def _mv(mv: MetricValue) -> dict[str, Any]:
    """{'value', 'note'} of a MetricValue, for table rows."""
    return {"value": mv.value, "note": mv.note}
