"""mmsurv.evaluate.stats: c-index vs sksurv/lifelines, input checks, maxstat vs R's maxstat."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines.statistics import logrank_test as lifelines_logrank_test
from lifelines.utils import concordance_index as lifelines_cindex
from sksurv.metrics import concordance_index_censored

from mmsurv.evaluate import stats
from mmsurv.evaluate.stats import (
    LogRankResult,
    MaxstatResult,
    SurvivalInputError,
    bootstrap_cindex_replicates,
    concordance_index,
    km_groups,
    logrank_scores,
    logrank_test,
    maxstat_cutpoint,
    maxstat_permutation_p,
    pvalue_lausen92,
    resampled_cindices,
)

FIXTURES = Path(__file__).parent / "fixtures" / "maxstat"


def _simulate(n: int, beta: float, seed: int, *, ties: bool = False):
    """Exponential survival with hazard exp(beta z), uniform censoring; risk = z + noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    t_event = rng.exponential(50 * np.exp(-beta * z))
    t_cens = rng.uniform(0, 150, n)
    time = np.minimum(t_event, t_cens)
    event = t_event <= t_cens
    risk = z + rng.normal(0, 0.5, n)
    if ties:
        time, risk = np.round(time / 6) * 6, np.round(risk, 1)
    event[np.argmin(time)] = True
    return time, event, risk


def _load_reference() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The committed R outputs: inputs, reference, cuts, scores."""
    return tuple(
        pd.read_csv(FIXTURES / f"{name}.csv") for name in ("inputs", "reference", "cuts", "scores")
    )  # type: ignore[return-value]


INPUTS, REFERENCE, CUTS, SCORES = _load_reference()
DATASETS = REFERENCE["dataset"].tolist()


def _dataset(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = INPUTS[INPUTS["dataset"] == name]
    return d["time"].to_numpy(), d["event"].to_numpy(), d["risk"].to_numpy()


# ---------------------------------------------------------------------------------------------
# c-index
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ties", [False, True])
def test_resampled_cindices_equal_sksurv_on_each_resample(ties: bool) -> None:
    """The pair-matrix bootstrap gives sksurv's value on every resample, to the bit."""
    time, event, risk = _simulate(40, 0.7, 3, ties=ties)
    other = np.round(risk + np.random.default_rng(9).normal(0, 1, 40), 1 if ties else 6)
    rng = np.random.default_rng(4)
    idx = rng.integers(0, 40, size=(300, 40))
    idx[0] = np.flatnonzero(~event)[0]  # one resample of a single censored case: undefined
    got = resampled_cindices(time, event, [risk, other], idx)
    assert np.isnan(got[0]).all()
    for b in range(1, len(idx)):
        i = idx[b]
        for k, r in enumerate((risk, other)):
            if not event[i].any():
                assert np.isnan(got[b, k])
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                want = concordance_index_censored(event[i], time[i], r[i])[0]
            assert got[b, k] == want or (np.isnan(got[b, k]) and np.isnan(want)), (b, k)


def test_bootstrap_replicates_same_with_pair_matrices_and_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both code paths (small and large cohorts) return the same values for the same seed."""
    time, event, risk = _simulate(60, 0.7, 5, ties=True)
    other = risk[::-1].copy()
    diff = lambda cs: cs[0] - cs[1]  # noqa: E731
    fast = bootstrap_cindex_replicates(time, event, [risk, other], diff, n_bootstrap=500, seed=7)
    monkeypatch.setattr(stats, "PAIR_MATRIX_MAX_CASES", 10)  # 60 cases: one by one through sksurv
    slow = bootstrap_cindex_replicates(time, event, [risk, other], diff, n_bootstrap=500, seed=7)
    assert len(fast) == len(slow) == 500
    assert fast == slow


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cindex_matches_sksurv_and_lifelines(seed: int, ties: bool) -> None:
    time, event, risk = _simulate(80, 0.7, seed, ties=ties)
    got = concordance_index(time, event, risk)
    assert got == concordance_index_censored(event, time, risk)[0]
    # lifelines scores predicted *survival*: higher = longer, hence -risk
    assert got == pytest.approx(lifelines_cindex(time, -risk, event), abs=1e-12)
    assert got > 0.5  # risk is positively related to the hazard


def test_cindex_extremes_and_int_events() -> None:
    time = np.array([1.0, 2.0, 3.0, 4.0])
    event = np.array([1, 1, 1, 1])  # 0/1 ints are accepted and converted
    assert concordance_index(time, event, [4, 3, 2, 1]) == 1.0
    assert concordance_index(time, event, [1, 2, 3, 4]) == 0.0
    assert concordance_index(time, event, [4, 3, 1, 2]) == pytest.approx(5 / 6)


BAD_INPUTS = [
    (([1.0, 2.0], [True, False], [0.1]), "same length, got 2, 2 and 1"),
    (([1.0, np.nan], [True, False], [0.1, 0.2]), "time must be finite; 1 value"),
    (([1.0, 2.0], [True, False], [0.1, np.inf]), "risk must be finite"),
    (([1.0, -2.0], [True, False], [0.1, 0.2]), r"time must be >= 0; found -2.0 at index 1"),
    (([1.0, 2.0], [1, 2], [0.1, 0.2]), "event must be boolean or integer 0/1; found value 2"),
    (([1.0, 2.0], [1.0, 0.0], [0.1, 0.2]), "event must be boolean .* got dtype float64"),
    (([1.0, 2.0], ["yes", "no"], [0.1, 0.2]), "event must be boolean"),
    (([1.0, 2.0], [False, False], [0.1, 0.2]), "All samples are censored"),
    (([1.0], [True], [0.1]), "Need a minimum of two samples, got 1"),
    (([[1.0, 2.0]], [True, False], [0.1, 0.2]), "time must be 1-dimensional"),
    (([1.0, 2.0], [True, False], ["a", "b"]), "risk must be numeric"),
    (([1.0, 2.0], [True, False], [True, False]), "risk must be numeric, got dtype bool"),
]


@pytest.mark.parametrize(("args", "match"), BAD_INPUTS)
def test_invalid_inputs_raise(args: tuple, match: str) -> None:
    with pytest.raises(SurvivalInputError, match=match):
        concordance_index(*args)
    with pytest.raises(SurvivalInputError, match=match):
        maxstat_cutpoint(*args)


def test_input_error_is_value_error() -> None:
    assert issubclass(SurvivalInputError, ValueError)


def test_cindex_without_comparable_pairs_raises() -> None:
    # the only death is the last time: no pair can be ordered
    with pytest.raises(SurvivalInputError, match="no comparable pairs"):
        concordance_index([1.0, 2.0], [False, True], [0.3, 0.1])


# ---------------------------------------------------------------------------------------------
# log-rank test
# ---------------------------------------------------------------------------------------------


def test_logrank_matches_lifelines() -> None:
    time, event, risk = _simulate(120, 1.0, 3)
    group = risk > np.median(risk)
    res = logrank_test(time, event, group)
    ref = lifelines_logrank_test(time[~group], time[group], event[~group], event[group])
    assert isinstance(res, LogRankResult)
    assert res.statistic == pytest.approx(ref.test_statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.p_value, rel=1e-12)
    assert (res.n_false, res.n_true) == (int((~group).sum()), int(group.sum()))
    assert res.events_false + res.events_true == int(event.sum())


def test_logrank_needs_two_groups() -> None:
    time, event, _ = _simulate(20, 1.0, 4)
    with pytest.raises(SurvivalInputError, match="both True and False, got 20 True and 0 False"):
        logrank_test(time, event, np.ones(20, bool))
    with pytest.raises(SurvivalInputError, match="group must be boolean"):
        logrank_test(time, event, np.linspace(0, 1, 20))
    with pytest.raises(SurvivalInputError, match="same length"):
        logrank_test(time, event, np.ones(19, bool))


# ---------------------------------------------------------------------------------------------
# maxstat vs R
# ---------------------------------------------------------------------------------------------


def test_reference_covers_required_cases() -> None:
    assert len(DATASETS) >= 4
    assert REFERENCE["n"].min() <= 20 and REFERENCE["n"].max() >= 200
    ties_time = [INPUTS.loc[INPUTS.dataset == d, "time"].duplicated().any() for d in DATASETS]
    ties_risk = [INPUTS.loc[INPUTS.dataset == d, "risk"].duplicated().any() for d in DATASETS]
    assert any(ties_time) and not all(ties_time)
    assert any(ties_risk) and not all(ties_risk)
    assert (REFERENCE["p_value"] == 1).any()  # the M < 1 branch of Lau92


@pytest.mark.parametrize("name", DATASETS)
def test_maxstat_equals_r(name: str) -> None:
    ref = REFERENCE.set_index("dataset").loc[name]
    time, event, risk = _dataset(name)
    res = maxstat_cutpoint(time, event, risk, minprop=ref["minprop"], maxprop=ref["maxprop"])
    assert isinstance(res, MaxstatResult)
    assert res.cutpoint == ref["cutpoint"]  # same double: a value of the risk column
    assert res.statistic == pytest.approx(ref["statistic"], rel=1e-12, abs=1e-12)
    assert res.p_value == pytest.approx(ref["p_value"], rel=1e-10, abs=1e-14)
    assert (res.n_low, res.n_high) == (ref["n_low"], ref["n_high"])
    assert res.n_low + res.n_high == res.n == len(time)
    cuts = CUTS[CUTS["dataset"] == name]
    np.testing.assert_array_equal(res.cutpoints, cuts["cut"].to_numpy())
    np.testing.assert_allclose(res.statistics, cuts["stat"].to_numpy(), rtol=1e-12, atol=1e-12)
    scores = SCORES[SCORES["dataset"] == name]["score"].to_numpy()
    np.testing.assert_allclose(logrank_scores(time, event), scores, rtol=0, atol=1e-12)


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R is not installed")
def test_committed_reference_matches_a_fresh_r_run(tmp_path: Path) -> None:
    probe = subprocess.run(
        ["Rscript", "-e", "library(maxstat); library(survival)"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip("R packages maxstat/survival are not installed")
    subprocess.run(
        ["Rscript", str(FIXTURES / "make_reference.R"), str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    for name in ("inputs", "reference", "cuts", "scores"):
        fresh = pd.read_csv(tmp_path / f"{name}.csv")
        committed = pd.read_csv(FIXTURES / f"{name}.csv")
        pd.testing.assert_frame_equal(fresh, committed, check_exact=False, rtol=1e-12)


def _brute_force_maxstat(time, event, risk, minprop=0.1, maxprop=0.9):
    """Straight from the definitions with Python loops, independent of the vectorised code."""
    n = len(time)
    rank_max = [sum(1 for tj in time if tj <= ti) for ti in time]
    scores = [
        float(event[i])
        - sum(float(event[j]) / (n - rank_max[j] + 1) for j in range(n) if time[j] <= time[i])
        for i in range(n)
    ]
    total = sum(scores)
    total_sq = sum(a * a for a in scores)
    best = None
    for cut in sorted(set(risk)):
        m = sum(1 for x in risk if x <= cut)
        if not (max(1, math.floor(n * minprop)) <= m <= math.floor(n * maxprop)):
            continue
        s = sum(a for a, x in zip(scores, risk, strict=True) if x <= cut)
        v = m * (n - m) / (n * n * (n - 1)) * (n * total_sq - total * total)
        stat = abs(s - m / n * total) / math.sqrt(v)
        if best is None or stat > best[1] + 1e-12:
            best = (cut, stat)
    return best


@pytest.mark.parametrize(("seed", "ties"), [(10, False), (11, True), (12, True)])
def test_maxstat_equals_brute_force(seed: int, ties: bool) -> None:
    time, event, risk = _simulate(45, 0.8, seed, ties=ties)
    res = maxstat_cutpoint(time, event, risk)
    cut, stat = _brute_force_maxstat(time.tolist(), event.tolist(), risk.tolist())
    assert res.cutpoint == cut
    assert res.statistic == pytest.approx(stat, rel=1e-10)


def test_maxstat_invariant_to_row_order() -> None:
    time, event, risk = _simulate(90, 1.0, 5, ties=True)
    perm = np.random.default_rng(0).permutation(90)
    a = maxstat_cutpoint(time, event, risk)
    b = maxstat_cutpoint(time[perm], event[perm], risk[perm])
    assert (a.cutpoint, a.n_low) == (b.cutpoint, b.n_low)
    assert a.statistic == pytest.approx(b.statistic, rel=1e-12)


def test_maxstat_argument_errors() -> None:
    time, event, risk = _simulate(30, 1.0, 6)
    with pytest.raises(SurvivalInputError, match="need 0 < minprop < maxprop < 1"):
        maxstat_cutpoint(time, event, risk, minprop=0.0)
    with pytest.raises(SurvivalInputError, match="need 0 < minprop < maxprop < 1"):
        maxstat_cutpoint(time, event, risk, minprop=0.6, maxprop=0.4)
    with pytest.raises(SurvivalInputError, match="risk has 1 distinct value"):
        maxstat_cutpoint(time, event, np.ones(30))
    with pytest.raises(SurvivalInputError, match="log-rank scores are constant"):
        maxstat_cutpoint(np.full(30, 5.0), np.ones(30, bool), risk)


def test_pvalue_lausen92_branches() -> None:
    assert pvalue_lausen92(0.5) == 1.0
    assert pvalue_lausen92(0.999999) == 1.0
    assert 0.9 < pvalue_lausen92(1.0) <= 1.5  # formula value at M = 1 (not capped by R either)
    assert pvalue_lausen92(3.0) == pytest.approx(
        4 * math.exp(-4.5) / math.sqrt(2 * math.pi) / 3
        + math.exp(-4.5) / math.sqrt(2 * math.pi) * (3 - 1 / 3) * math.log(81),
        rel=1e-12,
    )
    assert pvalue_lausen92(40.0) == 0.0  # floored at 0, never negative


# ---------------------------------------------------------------------------------------------
# permutation p-value and KM groups
# ---------------------------------------------------------------------------------------------


def test_permutation_p_is_reproducible() -> None:
    time, event, risk = _dataset("n60_heavycens_bothties")
    a = maxstat_permutation_p(time, event, risk, n_perm=300, seed=7)
    b = maxstat_permutation_p(time, event, risk, n_perm=300, seed=7)
    c = maxstat_permutation_p(time, event, risk, n_perm=300, seed=8)
    assert a == b
    assert a != c  # a different seed draws different permutations
    assert 1 / 301 <= a <= 1 and (a * 301) == pytest.approx(round(a * 301))


@pytest.mark.parametrize("name", ["n50_timeties", "n100_riskties"])
def test_permutation_p_close_to_lau92_with_clear_signal(name: str) -> None:
    ref = REFERENCE.set_index("dataset").loc[name]
    time, event, risk = _dataset(name)
    p_perm = maxstat_permutation_p(time, event, risk, n_perm=2000, seed=0)
    # Lau92 is an approximation (somewhat conservative); both must call the signal clearly
    assert ref["p_value"] < 0.01 and p_perm < 0.01
    assert abs(p_perm - ref["p_value"]) < 0.01


def test_permutation_p_large_without_signal() -> None:
    ref = REFERENCE.set_index("dataset").loc["n150_nosignal"]
    time, event, risk = _dataset("n150_nosignal")
    p_perm = maxstat_permutation_p(time, event, risk, n_perm=1000, seed=0)
    assert p_perm > 0.1 and ref["p_value"] > 0.1
    assert abs(p_perm - ref["p_value"]) < 0.15


def test_permutation_p_rejects_bad_n_perm() -> None:
    time, event, risk = _simulate(30, 1.0, 6)
    with pytest.raises(SurvivalInputError, match="n_perm must be a positive integer, got 0"):
        maxstat_permutation_p(time, event, risk, n_perm=0)


@pytest.mark.parametrize("name", DATASETS)
def test_km_groups_sizes_add_up(name: str) -> None:
    ref = REFERENCE.set_index("dataset").loc[name]
    time, event, risk = _dataset(name)
    res = km_groups(time, event, risk, ref["minprop"], ref["maxprop"], n_perm=50, seed=1)
    assert res["n_low"] + res["n_high"] == res["n"] == len(time)
    assert res["events_low"] + res["events_high"] == int(event.sum())
    assert (res["n_low"], res["cutpoint"]) == (ref["n_low"], ref["cutpoint"])
    assert res["p_maxstat_lau92"] == pytest.approx(ref["p_value"], rel=1e-10, abs=1e-14)
    high = risk > res["cutpoint"]
    assert res["logrank_p"] == pytest.approx(logrank_test(time, event, high).p_value, rel=1e-12)
    assert res["logrank"].n_true == res["n_high"] and res["maxstat"].n_low == res["n_low"]
    assert 0 < res["p_maxstat_perm"] <= 1
    json.dumps({k: v for k, v in res.items() if k not in ("maxstat", "logrank")})


def test_km_groups_without_permutations() -> None:
    time, event, risk = _simulate(60, 1.0, 9)
    assert km_groups(time, event, risk)["p_maxstat_perm"] is None
