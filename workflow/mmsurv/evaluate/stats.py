"""Survival statistics: c-index, log-rank test and the maximally selected log-rank cutpoint.

Conventions (docs/architecture.md): ``event`` is boolean (True = death observed), ``time`` is in
months (>= 0) and ``risk`` is a score where higher means worse (shorter survival). Every public
function validates its inputs first and raises :class:`SurvivalInputError` with a precise message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from lifelines.statistics import logrank_test as _lifelines_logrank_test
from scipy.stats import norm
from sksurv.exceptions import NoComparablePairException
from sksurv.metrics import concordance_index_censored

__all__ = [
    "LogRankResult",
    "bootstrap_cindex_replicates",
    "MaxstatResult",
    "SurvivalInputError",
    "concordance_index",
    "honest_km_groups",
    "km_groups",
    "logrank_scores",
    "logrank_test",
    "maxstat_cutpoint",
    "maxstat_permutation_p",
    "pvalue_lausen92",
    "train_fold_cutpoints",
]


class SurvivalInputError(ValueError):
    """Raised when survival data (time, event, risk) cannot be used as given."""


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _as_1d(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D array or raise, naming the argument."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise SurvivalInputError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    return arr


def _as_finite_float(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a finite 1-D float64 array or raise, naming the argument."""
    arr = _as_1d(values, name)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise SurvivalInputError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise SurvivalInputError(
            f"{name} must be finite; {int(bad.sum())} value(s) are NaN or infinite "
            f"(first at index {int(np.flatnonzero(bad)[0])})"
        )
    return arr


def _as_bool(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a boolean array; integer 0/1 is converted, anything else raises."""
    arr = _as_1d(values, name)
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            raise SurvivalInputError(
                f"{name} must be boolean or integer 0/1; found value "
                f"{arr[np.flatnonzero(bad)[0]].item()!r} at index {int(np.flatnonzero(bad)[0])}"
            )
        return arr.astype(bool)
    raise SurvivalInputError(
        f"{name} must be boolean (True = death observed) or integer 0/1, got dtype {arr.dtype}"
    )


def _check(
    time: Any, event: Any, risk: Any | None, *, risk_name: str = "risk"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate survival inputs and return (time float64, event bool, risk float64).

    ``risk=None`` skips the score (log-rank scores need only time and event); an all-zero array
    is returned in its place.
    """
    t = _as_finite_float(time, "time")
    e = _as_bool(event, "event")
    r = np.zeros(len(t)) if risk is None else _as_finite_float(risk, risk_name)
    if not (len(t) == len(e) == len(r)):
        raise SurvivalInputError(
            f"time, event and {risk_name} must have the same length, "
            f"got {len(t)}, {len(e)} and {len(r)}"
        )
    if (t < 0).any():
        i = int(np.flatnonzero(t < 0)[0])
        raise SurvivalInputError(f"time must be >= 0; found {float(t[i])!r} at index {i}")
    if len(t) < 2:
        raise SurvivalInputError(f"Need a minimum of two samples, got {len(t)}")
    if not e.any():
        raise SurvivalInputError("All samples are censored")
    return t, e, r


def _check_props(minprop: float, maxprop: float) -> None:
    """Validate the maxstat search range, 0 < minprop < maxprop < 1 (Lau92 needs both ends)."""
    if not (0.0 < minprop < maxprop < 1.0):
        raise SurvivalInputError(
            f"need 0 < minprop < maxprop < 1, got minprop={minprop!r}, maxprop={maxprop!r}"
        )


# --------------------------------------------------------------------------------------------
# c-index and log-rank test (library implementations)
# --------------------------------------------------------------------------------------------


def concordance_index(time: Any, event: Any, risk: Any) -> float:
    """Harrell's c-index of a risk score via scikit-survival's ``concordance_index_censored``.

    ``risk``: a higher value means a higher risk (shorter survival), e.g. ``-sum_t S(t)``. It does
    *not* accept survival probabilities or predicted times; negate those first. Ties in risk
    count 1/2. lifelines' ``concordance_index(time, -risk, event)`` gives the same number.
    """
    t, e, r = _check(time, event, risk)
    try:
        return float(concordance_index_censored(e, t, r)[0])
    except NoComparablePairException as err:
        raise SurvivalInputError(
            "no comparable pairs: the c-index is undefined (no event precedes another time)"
        ) from err


# Resamples of up to this many cases are scored through n x n pair matrices (float64: 32 MB at
# 2,000 cases); larger ones one resample at a time through sksurv.
PAIR_MATRIX_MAX_CASES = 2000
_TIED_RISK_TOL = 1e-8  # sksurv's concordance_index_censored default tied_tol


def bootstrap_cindex_replicates(
    time: np.ndarray,
    event: np.ndarray,
    risks: list[np.ndarray],
    combine: Callable[[list[float]], float],
    *,
    n_bootstrap: int,
    seed: int,
) -> list[float]:
    """``combine`` of the c-indices of ``risks`` on each valid case resample (seeded).

    Every risk array is scored on the same resampled cases, so paired statistics (a difference)
    keep their pairing. Resamples without a death or a comparable pair, or with a non-finite
    result, are skipped: the caller counts what is returned.
    """
    if not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 1:
        raise SurvivalInputError(f"n_bootstrap must be a positive integer, got {n_bootstrap!r}")
    rng = np.random.default_rng(seed)
    n = len(time)
    if n > PAIR_MATRIX_MAX_CASES:
        cs = _resampled_cindices_one_by_one(time, event, risks, int(n_bootstrap), rng)
    else:
        # one (B, n) draw is the same stream as B draws of n (numpy's Generator.integers)
        idx = rng.integers(0, n, size=(int(n_bootstrap), n))
        cs = resampled_cindices(time, event, risks, idx)
    values = []
    for row in cs:
        if np.isnan(row).any():  # no death or no comparable pair in this resample
            continue
        value = combine(list(row))
        if np.isfinite(value):
            values.append(float(value))
    return values


def resampled_cindices(
    time: np.ndarray, event: np.ndarray, risks: list[np.ndarray], idx: np.ndarray
) -> np.ndarray:
    """Harrell's c-index of each risk on each resample ``idx[b]`` of the cases: (B, len(risks)).

    Equal to sksurv's ``concordance_index_censored`` on ``event[idx[b]], time[idx[b]],
    risk[idx[b]]`` (same comparable pairs, same 1e-8 risk ties, same sums), NaN where it raises
    (no comparable pair). Written with pair matrices rather than calling sksurv per resample:
    a resample is a vector of case counts w, and its concordant and comparable pair counts are
    the quadratic forms w' A w over the cohort's pair matrices, so 1,000 resamples cost a few
    matrix products instead of 1,000 calls (0.7 ms each at 50 cases; the paired table makes
    ~90,000 of them in the demo).
    """
    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event, dtype=bool)
    n, n_boot = len(t), idx.shape[0]
    counts = np.bincount((idx + n * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n)
    w = counts.reshape(n_boot, n).astype(np.float64)
    # pair (i, j) comparable: i died, and j outlived it or was censored at the same time
    comparable = e[:, None] & (
        (t[None, :] > t[:, None]) | ((t[None, :] == t[:, None]) & ~e[None, :])
    )
    n_comparable = np.einsum("bi,ij,bj->b", w, comparable.astype(np.float64), w, optimize=True)
    out = np.full((n_boot, len(risks)), np.nan)
    valid = n_comparable > 0
    for k, risk in enumerate(risks):
        r = np.asarray(risk, dtype=np.float64)
        diff = r[:, None] - r[None, :]
        score = np.where(np.abs(diff) <= _TIED_RISK_TOL, 0.5, (diff > 0).astype(np.float64))
        score *= comparable
        concordant = np.einsum("bi,ij,bj->b", w, score, w, optimize=True)
        out[valid, k] = concordant[valid] / n_comparable[valid]
    return out


def _resampled_cindices_one_by_one(
    time: np.ndarray,
    event: np.ndarray,
    risks: list[np.ndarray],
    n_bootstrap: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """resampled_cindices through sksurv, one resample drawn and scored at a time.

    For cohorts too large for pair matrices; draws the same resamples from ``rng`` and returns
    the same (B, len(risks)) array, NaN where a resample has no death or no comparable pair.
    """
    out = np.full((n_bootstrap, len(risks)), np.nan)
    for b in range(n_bootstrap):
        idx = rng.integers(0, len(time), size=len(time))
        if not event[idx].any():
            continue
        try:
            with np.errstate(invalid="ignore", divide="ignore"):  # 0/0: no comparable pair
                out[b] = [
                    concordance_index_censored(event[idx], time[idx], r[idx])[0] for r in risks
                ]
        except NoComparablePairException:
            continue
    return out


@dataclass(frozen=True)
class LogRankResult:
    """Two-group log-rank test; group ``True`` vs group ``False`` (e.g. high vs low risk)."""

    statistic: float
    p_value: float
    n_false: int
    n_true: int
    events_false: int
    events_true: int


def logrank_test(time: Any, event: Any, group: Any) -> LogRankResult:
    """Two-group log-rank (Mantel-Cox) test via lifelines; ``group`` is a boolean array."""
    g = _as_bool(group, "group")
    t, e, _ = _check(time, event, None)
    if len(g) != len(t):
        raise SurvivalInputError(
            f"time, event and group must have the same length, got {len(t)}, {len(e)} and {len(g)}"
        )
    n_true = int(g.sum())
    n_false = int(len(g) - n_true)
    if n_true == 0 or n_false == 0:
        raise SurvivalInputError(
            f"group must contain both True and False, got {n_true} True and {n_false} False"
        )
    res = _lifelines_logrank_test(t[~g], t[g], event_observed_A=e[~g], event_observed_B=e[g])
    return LogRankResult(
        statistic=float(res.test_statistic),
        p_value=float(res.p_value),
        n_false=n_false,
        n_true=n_true,
        events_false=int(e[~g].sum()),
        events_true=int(e[g].sum()),
    )


# --------------------------------------------------------------------------------------------
# maximally selected log-rank statistic
#
# Written by hand because neither scikit-survival nor lifelines (nor any maintained Python
# package) implements R maxstat's maxstat.test(..., smethod = "LogRank", pmethod = "Lau92"):
# a maximally selected *standardised linear rank statistic* of log-rank scores with the
# Lausen & Schumacher (1992) p-value. It is not the two-group log-rank chi-square maximised over
# cutpoints, which picks different cutpoints on tied or small data. Every step below mirrors
# maxstat 0.7-25 (cmaxstat, pLausen92) and exactRankTests 0.8-35 (cscores.Surv) line by line;
# tests/fixtures/maxstat holds R's values and the R script that made them.
# --------------------------------------------------------------------------------------------


def logrank_scores(time: Any, event: Any) -> np.ndarray:
    """Log-rank scores a_i of exactRankTests' ``cscores(Surv(time, event), "LogRank")``.

    a_i = delta_i - sum_{j: t_j <= t_i} delta_j / (N - r_j + 1), r = rank of t with ties given
    the largest rank; the scores maxstat uses for ``smethod = "LogRank"``.
    """
    t, e, _ = _check(time, event, None)
    return _logrank_scores(t, e)


def _logrank_scores(t: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Compute log-rank scores on validated arrays (see :func:`logrank_scores`)."""
    n = len(t)
    order = np.argsort(t, kind="stable")
    # rank with ties -> max rank (R's rank(ties = "max"), exactRankTests' irank)
    rank_max = np.searchsorted(np.sort(t), t, side="right")
    fact = e.astype(np.float64) / (n - rank_max + 1)
    cum = np.cumsum(fact[order])
    return e.astype(np.float64) - cum[rank_max - 1]


def pvalue_lausen92(statistic: float, minprop: float = 0.1, maxprop: float = 0.9) -> float:
    """Lausen & Schumacher (1992) p-value of a maximally selected statistic (maxstat pLausen92)."""
    _check_props(minprop, maxprop)
    b = float(statistic)
    if b < 1:
        return 1.0
    db = float(norm.pdf(b))
    p = 4 * db / b + db * (b - 1 / b) * math.log(
        (maxprop * (1 - minprop)) / ((1 - maxprop) * minprop)
    )
    return max(p, 0.0)


@dataclass(frozen=True)
class MaxstatResult:
    """Maximally selected log-rank statistic: cutpoint, M, Lau92 p and the candidate scan.

    Low risk = ``risk <= cutpoint`` (``n_low`` cases), high risk = ``risk > cutpoint``.
    ``cutpoints``/``statistics`` are the candidate cutpoints (ascending) and their
    ``|standardised S|``, as R's ``maxtest$cuts`` and ``maxtest$stats``.
    """

    cutpoint: float
    statistic: float
    p_value: float
    n_low: int
    n_high: int
    n: int
    minprop: float
    maxprop: float
    cutpoints: np.ndarray = field(repr=False, compare=False)
    statistics: np.ndarray = field(repr=False, compare=False)


def _candidate_positions(x_sorted: np.ndarray, minprop: float, maxprop: float) -> np.ndarray:
    """Counts m = #{x <= cut} of the admissible cutpoints, as maxstat's cmaxstat selects them."""
    n = len(x_sorted)
    # m = (index of each distinct value's first occurrence) = #{x < value}; the cut is the
    # previous distinct value, so m = #{x <= cut}. m = 0 is never admissible.
    first = np.flatnonzero(np.r_[True, x_sorted[1:] != x_sorted[:-1]])
    m = first
    lo, hi = max(1, math.floor(n * minprop)), math.floor(n * maxprop)
    m = m[(m >= lo) & (m <= hi)]
    if len(m) == 0:
        n_distinct = len(first)
        raise SurvivalInputError(
            f"no cutpoint leaves between {lo} and {hi} of {n} cases in the low-risk group "
            f"(minprop={minprop}, maxprop={maxprop}; risk has {n_distinct} distinct value(s))"
        )
    return m


def _score_moments(scores: np.ndarray) -> tuple[float, float]:
    """Return (sum a, N sum a^2 - (sum a)^2); both are invariant under permutation."""
    n = len(scores)
    ss = float(scores.sum())
    sq = float(np.sum(scores**2))
    var_factor = n * sq - ss**2
    if var_factor <= 1e-12 * max(1.0, n * sq):
        raise SurvivalInputError(
            "log-rank scores are constant, so the statistic is undefined "
            "(e.g. every case has the same time)"
        )
    return ss, var_factor


def _abs_standardised(
    scores_sorted: np.ndarray, m: np.ndarray, ss: float, var_factor: float
) -> np.ndarray:
    """|S - E| / sqrt(V) at the counts m, for scores in risk order (last axis; batches allowed)."""
    n = scores_sorted.shape[-1]
    expect = m / n * ss
    var = m * (n - m) / (n**2 * (n - 1)) * var_factor
    s = np.cumsum(scores_sorted, axis=-1)[..., m - 1]
    return np.abs((s - expect) / np.sqrt(var))


def maxstat_cutpoint(
    time: Any, event: Any, risk: Any, *, minprop: float = 0.1, maxprop: float = 0.9
) -> MaxstatResult:
    """Optimal risk cutpoint as R ``maxstat.test(Surv(time, event) ~ risk, smethod = "LogRank",
    pmethod = "Lau92", minprop, maxprop)`` computes it (maxstat 0.7-25).

    S(cut) = sum of log-rank scores of cases with risk <= cut, standardised by its permutation
    mean and variance; M = max |S_std| over cuts leaving between max(1, floor(N minprop)) and
    floor(N maxprop) cases low; the cutpoint is the smallest risk value attaining M.
    """
    t, e, x = _check(time, event, risk)
    _check_props(minprop, maxprop)
    n = len(t)
    scores = _logrank_scores(t, e)
    order = np.argsort(x, kind="stable")
    x_sorted = x[order]
    m = _candidate_positions(x_sorted, minprop, maxprop)
    stats = _abs_standardised(scores[order], m, *_score_moments(scores))
    best = float(stats.max())
    # R: min(which(Test == STATISTIC)). A 1e-12 relative tolerance lets mathematically equal
    # statistics tie regardless of last-bit rounding, so the smallest such cut always wins.
    i_best = int(np.flatnonzero(stats >= best * (1 - 1e-12))[0])
    cut = float(x_sorted[m[i_best] - 1])
    n_low = int(m[i_best])
    return MaxstatResult(
        cutpoint=cut,
        statistic=best,
        p_value=pvalue_lausen92(best, minprop, maxprop),
        n_low=n_low,
        n_high=n - n_low,
        n=n,
        minprop=float(minprop),
        maxprop=float(maxprop),
        cutpoints=x_sorted[m - 1].copy(),
        statistics=stats,
    )


def maxstat_permutation_p(
    time: Any,
    event: Any,
    risk: Any,
    *,
    n_perm: int = 1000,
    seed: int = 0,
    minprop: float = 0.1,
    maxprop: float = 0.9,
) -> float:
    """Permutation p-value of maxstat's M: (1 + #{M_perm >= M}) / (1 + n_perm).

    The log-rank scores are permuted over the (fixed) risk order and M is recomputed over the
    same candidate cutpoints; ``seed`` makes the result reproducible.
    """
    if isinstance(n_perm, bool) or not isinstance(n_perm, int | np.integer) or n_perm < 1:
        raise SurvivalInputError(f"n_perm must be a positive integer, got {n_perm!r}")
    t, e, x = _check(time, event, risk)
    _check_props(minprop, maxprop)
    scores = _logrank_scores(t, e)
    order = np.argsort(x, kind="stable")
    m = _candidate_positions(x[order], minprop, maxprop)
    moments = _score_moments(scores)
    observed = float(_abs_standardised(scores[order], m, *moments).max())
    rng = np.random.default_rng(seed)
    # sum and sum of squares are permutation invariant, so E and V stay as observed;
    # a relative tolerance keeps permutations that tie M (up to rounding) counted as >= M.
    threshold = observed * (1 - 1e-12)
    n_ge = 0
    chunk = max(1, min(n_perm, 2_000_000 // max(1, len(scores))))
    done = 0
    while done < n_perm:
        k = min(chunk, n_perm - done)
        perms = rng.permuted(np.broadcast_to(scores, (k, len(scores))), axis=1)
        stats = _abs_standardised(perms, m, *moments)
        n_ge += int(np.count_nonzero(stats.max(axis=1) >= threshold))
        done += k
    return (1 + n_ge) / (1 + n_perm)


def km_groups(
    time: Any,
    event: Any,
    risk: Any,
    minprop: float = 0.1,
    maxprop: float = 0.9,
    *,
    n_perm: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Split cases at the maxstat cutpoint and test low vs high risk (high = risk > cutpoint).

    Returns the result objects ``maxstat`` (:class:`MaxstatResult`) and ``logrank``
    (:class:`LogRankResult`, high vs low) plus JSON-ready scalars: cutpoint, statistic (M),
    p_maxstat_lau92, p_maxstat_perm (None unless n_perm > 0), n_perm, seed, logrank_statistic,
    logrank_p, n, n_low, n_high, events_low, events_high, minprop, maxprop, n_candidates.
    """
    t, e, r = _check(time, event, risk)
    ms = maxstat_cutpoint(t, e, r, minprop=minprop, maxprop=maxprop)
    high = r > ms.cutpoint
    lr = logrank_test(t, e, high)
    p_perm = (
        maxstat_permutation_p(t, e, r, n_perm=n_perm, seed=seed, minprop=minprop, maxprop=maxprop)
        if n_perm > 0
        else None
    )
    return {
        "maxstat": ms,
        "logrank": lr,
        "cutpoint": ms.cutpoint,
        "statistic": ms.statistic,
        "p_maxstat_lau92": ms.p_value,
        "p_maxstat_perm": p_perm,
        "n_perm": int(n_perm),
        "seed": int(seed),
        "logrank_statistic": lr.statistic,
        "logrank_p": lr.p_value,
        "n": ms.n,
        "n_low": lr.n_false,
        "n_high": lr.n_true,
        "events_low": lr.events_false,
        "events_high": lr.events_true,
        "minprop": ms.minprop,
        "maxprop": ms.maxprop,
        "n_candidates": len(ms.cutpoints),
    }


# --------------------------------------------------------------------------------------------
# honest KM: cutpoints learned on each fold's training cases, applied to its held-out cases
# --------------------------------------------------------------------------------------------


def train_fold_cutpoints(
    train_fold: Any,
    train_risk: Any,
    train_time: Any,
    train_event: Any,
    *,
    minprop: float = 0.1,
    maxprop: float = 0.9,
) -> dict[Any, MaxstatResult]:
    """The maxstat cutpoint of each fold, found on that fold's *training* cases' risks only.

    ``train_fold`` labels each training-case row with the fold whose model scored it (a case is
    a training case of every fold but its own, so it appears once per such fold). Returns
    ``{fold: MaxstatResult}`` in sorted fold order; held-out risks never enter.
    """
    folds = _as_1d(train_fold, "train_fold")
    t, e, r = _check(train_time, train_event, train_risk, risk_name="train_risk")
    if len(folds) != len(t):
        raise SurvivalInputError(
            f"train_fold and train_risk must have the same length, got {len(folds)} and {len(t)}"
        )
    out: dict[Any, MaxstatResult] = {}
    for fold in sorted(set(folds.tolist())):
        rows = folds == fold
        try:
            out[fold] = maxstat_cutpoint(
                t[rows], e[rows], r[rows], minprop=minprop, maxprop=maxprop
            )
        except SurvivalInputError as err:
            raise SurvivalInputError(f"fold {fold!r} training cases: {err}") from err
    return out


def honest_km_groups(
    train_fold: Any,
    train_risk: Any,
    train_time: Any,
    train_event: Any,
    test_fold: Any,
    test_risk: Any,
    test_time: Any,
    test_event: Any,
    *,
    minprop: float = 0.1,
    maxprop: float = 0.9,
) -> dict[str, Any]:
    """High/low risk of each held-out case by its fold's training-case cutpoint, and the log-rank
    test of the pooled held-out groups.

    The cutpoints are not chosen on the held-out cases, so the plain two-group log-rank p is
    valid (no maxstat correction). Returns ``high`` (bool per held-out case, risk > its fold's
    cutpoint), ``cutpoints`` ``{fold: cutpoint}``, per-fold ``folds`` rows (training n, maxstat M
    and Lau92 p on the training cases, held-out n_low/n_high) and the pooled log-rank numbers
    (``logrank_p`` and ``logrank_statistic`` are None when a group is empty).
    """
    cuts = train_fold_cutpoints(
        train_fold, train_risk, train_time, train_event, minprop=minprop, maxprop=maxprop
    )
    folds = _as_1d(test_fold, "test_fold")
    t, e, r = _check(test_time, test_event, test_risk, risk_name="test_risk")
    if len(folds) != len(t):
        raise SurvivalInputError(
            f"test_fold and test_risk must have the same length, got {len(folds)} and {len(t)}"
        )
    no_cut = sorted(set(folds.tolist()) - set(cuts))
    if no_cut:
        raise SurvivalInputError(f"held-out fold(s) {no_cut} have no training-case risks")
    cut_of_case = np.array([cuts[f].cutpoint for f in folds.tolist()], dtype=np.float64)
    high = r > cut_of_case
    per_fold = []
    for fold, ms in cuts.items():
        rows = folds == fold
        per_fold.append(
            {
                "fold": fold,
                "cutpoint": ms.cutpoint,
                "n_train": ms.n,
                "train_statistic": ms.statistic,
                "train_p_maxstat_lau92": ms.p_value,
                "n_test": int(rows.sum()),
                "n_low": int((rows & ~high).sum()),
                "n_high": int((rows & high).sum()),
            }
        )
    n_high = int(high.sum())
    both = 0 < n_high < len(high)
    lr = logrank_test(t, e, high) if both else None
    return {
        "high": high,
        "cutpoints": {fold: ms.cutpoint for fold, ms in cuts.items()},
        "folds": per_fold,
        "logrank_statistic": None if lr is None else lr.statistic,
        "logrank_p": None if lr is None else lr.p_value,
        "n": len(high),
        "n_low": len(high) - n_high,
        "n_high": n_high,
        "events_low": int(e[~high].sum()),
        "events_high": int(e[high].sum()),
        "minprop": float(minprop),
        "maxprop": float(maxprop),
    }
