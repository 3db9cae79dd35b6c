"""mmsurv.evaluate.metrics: step curves, td-AUC and IBS by hand and against independent code,
horizon edge cases, the seeded bootstrap, and the pooled-predictions evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from sksurv.metrics import concordance_index_censored, cumulative_dynamic_auc
from sksurv.util import Surv

from mmsurv.evaluate.metrics import (
    bootstrap_cindex,
    default_horizons,
    evaluable_range,
    evaluate_predictions,
    integrated_brier,
    surv_columns,
    survival_at,
    time_dependent_auc,
)
from mmsurv.evaluate.stage import read_bin_edges, write_metrics_outputs
from mmsurv.evaluate.stats import SurvivalInputError, concordance_index

# --------------------------------------------------------------------------------------------
# helpers: an independent IPCW implementation (lifelines' Kaplan-Meier of the censoring times)
# --------------------------------------------------------------------------------------------


def _censoring_km(train_time: np.ndarray, train_event: np.ndarray):
    """G(t) = P(C > t), lifelines' KM with censorings as the events (continuous times only)."""
    km = KaplanMeierFitter().fit(train_time, event_observed=~train_event)
    return lambda t: float(km.survival_function_at_times(t).iloc[0])


def _uno_auc_by_hand(tr_t, tr_e, te_t, te_e, risk, h) -> float:
    """Uno's cumulative/dynamic AUC written out pair by pair (no ties in risk)."""
    g = _censoring_km(tr_t, tr_e)
    cases = [i for i in range(len(te_t)) if te_e[i] and te_t[i] <= h]
    controls = [j for j in range(len(te_t)) if te_t[j] > h]
    num = sum(
        (risk[i] > risk[j]) / g(te_t[i]) for i in cases for j in controls
    )  # weight 1 / G(t_i)
    den = sum(1 / g(te_t[i]) for i in cases) * len(controls)
    return num / den


def _ibs_by_hand(tr_t, tr_e, te_t, te_e, s_grid, grid) -> float:
    """Graf's IPCW Brier score on ``grid``, trapezoid-integrated, divided by the range."""
    g = _censoring_km(tr_t, tr_e)
    bs = []
    for k, t in enumerate(grid):
        total = 0.0
        for i in range(len(te_t)):
            if te_t[i] <= t and te_e[i]:
                total += s_grid[i, k] ** 2 / g(te_t[i])
            elif te_t[i] > t:
                total += (1 - s_grid[i, k]) ** 2 / g(t)
        bs.append(total / len(te_t))
    return float(np.trapezoid(bs, grid) / (grid[-1] - grid[0]))


def _random_split(seed: int, n_train: int = 60, n_test: int = 25, n_bins: int = 4):
    """Continuous survival data (no ties), censoring ~35 %, and decreasing step curves."""
    rng = np.random.default_rng(seed)

    def draw(n):
        t_event = rng.exponential(30, n)
        t_cens = rng.exponential(60, n)
        return np.minimum(t_event, t_cens), t_event <= t_cens

    tr_t, tr_e = draw(n_train)
    te_t, te_e = draw(n_test)
    edges = np.r_[0.0, np.quantile(tr_t[tr_e], [0.25, 0.5, 0.75]), tr_t.max() + 1]
    hazards = rng.uniform(0.05, 0.6, (n_test, n_bins))
    surv = np.cumprod(1 - hazards, axis=1)
    return tr_t, tr_e, te_t, te_e, surv, edges


# --------------------------------------------------------------------------------------------
# step curves and horizons
# --------------------------------------------------------------------------------------------


def test_survival_at_is_a_right_continuous_step_at_the_bin_ends() -> None:
    surv = [[0.9, 0.6, 0.3], [0.5, 0.5, 0.1]]
    edges = [0.0, 10.0, 20.0, 30.0]
    times = [0.0, 9.99, 10.0, 15.0, 20.0, 29.0, 30.0, 100.0]
    got = survival_at(surv, edges, times)
    assert got[0].tolist() == [1.0, 1.0, 0.9, 0.9, 0.6, 0.6, 0.3, 0.3]
    assert got[1].tolist() == [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1]


@pytest.mark.parametrize(
    ("surv", "edges", "match"),
    [
        ([[0.5, 0.7]], [0, 1, 2], "non-increasing over bins"),
        ([[0.5, 0.4]], [0, 1], "one more value than surv has bins"),
        ([[0.5, 0.4]], [0, 2, 1], "non-decreasing"),
        ([[1.2, 0.4]], [0, 1, 2], r"probabilities in \[0, 1\]"),
        ([0.5, 0.4], [0, 1, 2], "2-dimensional"),
        ([[np.nan, 0.4]], [0, 1, 2], "finite"),
    ],
)
def test_bad_survival_curves_are_rejected(surv, edges, match) -> None:
    with pytest.raises(SurvivalInputError, match=match):
        survival_at(surv, edges, [1.0])


def test_surv_columns_in_numeric_order() -> None:
    cols = ["case_id", "surv_10", "surv_2"] + [f"surv_{j}" for j in (0, 1, 3, 4, 5, 6, 7, 8, 9)]
    assert surv_columns(cols) == [f"surv_{j}" for j in range(11)]
    with pytest.raises(SurvivalInputError, match="surv_0..surv_"):
        surv_columns(["surv_0", "surv_2"])
    with pytest.raises(SurvivalInputError, match="surv_0..surv_"):
        surv_columns(["risk", "hazard_0"])


def test_default_horizons_are_quantiles_of_death_times() -> None:
    time = np.arange(1.0, 11.0)
    event = time % 2 == 0  # deaths at 2, 4, 6, 8, 10
    assert default_horizons(time, event).tolist() == [4.0, 6.0, 8.0]
    assert default_horizons(time, event, [0.5]).tolist() == [6.0]
    with pytest.raises(SurvivalInputError, match=r"in \(0, 1\)"):
        default_horizons(time, event, [0.5, 1.0])
    with pytest.raises(SurvivalInputError, match="All samples are censored"):
        default_horizons(time, np.zeros(10, bool))


def test_evaluable_range_stops_at_the_training_follow_up() -> None:
    assert evaluable_range([1, 5, 50], [3, 10, 20]) == (3.0, 20.0)
    assert evaluable_range([1, 5, 15], [3, 10, 20]) == (3.0, 15.0)


# --------------------------------------------------------------------------------------------
# time-dependent AUC
# --------------------------------------------------------------------------------------------


def test_td_auc_by_hand_without_censoring() -> None:
    # no censoring in training -> all IPC weights are 1; at h = 7 the cases are the deaths at
    # 2, 4, 6 and the controls 8, 10, 12. Risk 1 - S(7): cases .9 .5 .3, controls .4 .2 .1:
    # 8 of the 9 case-control pairs are ordered correctly.
    tr_t, tr_e = np.arange(1.0, 21.0), np.ones(20, bool)
    te_t, te_e = np.array([2.0, 4, 6, 8, 10, 12]), np.ones(6, bool)
    s_h = 1 - np.array([0.9, 0.5, 0.3, 0.4, 0.2, 0.1])
    surv = np.column_stack([s_h, s_h / 2])  # bin 0 ends at 5, so S(7) = surv_0
    (auc,) = time_dependent_auc(tr_t, tr_e, te_t, te_e, surv, [0, 5, 50], [7.0])
    assert auc.value == pytest.approx(8 / 9)
    assert auc.note == ""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_td_auc_matches_unos_formula_with_censoring(seed: int) -> None:
    tr_t, tr_e, te_t, te_e, surv, edges = _random_split(seed)
    lo, hi = evaluable_range(tr_t, te_t)
    # horizons after the first bin end, so that the risks 1 - S(h) differ (no ties)
    deaths = np.sort(te_t[te_e & (te_t > edges[1]) & (te_t < hi)])
    horizons = [float(deaths[0]) + 0.01, float(np.median(deaths))]
    got = time_dependent_auc(tr_t, tr_e, te_t, te_e, surv, edges, horizons)
    for h, mv in zip(horizons, got, strict=True):
        risk = 1 - survival_at(surv, edges, [h])[:, 0]
        assert mv.value == pytest.approx(_uno_auc_by_hand(tr_t, tr_e, te_t, te_e, risk, h))
        # and it is scikit-survival's number where sksurv can be called on the raw data
        if te_t.max() <= tr_t.max():
            ref, _ = cumulative_dynamic_auc(
                Surv.from_arrays(tr_e, tr_t), Surv.from_arrays(te_e, te_t), risk, [h]
            )
            assert mv.value == pytest.approx(ref[0])


def test_td_auc_when_test_follow_up_outlasts_training() -> None:
    # a test death after the last training time: raw sksurv refuses (no censoring estimate
    # there); censoring the test data at that time changes no term at h < 20
    tr_t = np.array([1.0, 3, 5, 7, 9, 11, 13, 15, 17, 20])
    tr_e = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 1], bool)
    te_t = np.array([2.0, 4, 6, 12, 14, 18, 25, 30])
    te_e = np.array([1, 1, 0, 1, 1, 0, 1, 1], bool)
    risk = np.array([0.9, 0.7, 0.5, 0.6, 0.3, 0.2, 0.4, 0.1])
    surv = np.column_stack([1 - risk, (1 - risk) / 2])
    edges = [0.0, 1.5, 40.0]
    with pytest.raises(ValueError, match="largest observed time point"):
        cumulative_dynamic_auc(
            Surv.from_arrays(tr_e, tr_t), Surv.from_arrays(te_e, te_t), risk, [10.0]
        )
    got = time_dependent_auc(tr_t, tr_e, te_t, te_e, surv, edges, [10.0, 19.0, 20.0])
    assert got[0].value == pytest.approx(_uno_auc_by_hand(tr_t, tr_e, te_t, te_e, risk, 10.0))
    assert got[1].value == pytest.approx(_uno_auc_by_hand(tr_t, tr_e, te_t, te_e, risk, 19.0))
    assert math.isnan(got[2].value)
    assert "outside the evaluable follow-up [2, 20)" in got[2].note


def test_td_auc_horizon_edge_cases_give_nan_and_a_note() -> None:
    tr_t, tr_e = np.arange(1.0, 31.0), np.ones(30, bool)
    te_t = np.array([5.0, 8, 12, 15, 20, 25])
    te_e = np.array([0, 1, 1, 1, 0, 1], bool)
    surv = np.column_stack([np.linspace(0.9, 0.4, 6), np.linspace(0.5, 0.1, 6)])
    edges = [0.0, 10.0, 40.0]
    got = time_dependent_auc(tr_t, tr_e, te_t, te_e, surv, edges, [4.0, 6.0, 9.0, 25.0, 99.0])
    below, no_death, flat, at_end, beyond = got
    assert math.isnan(below.value) and "horizon 4 outside" in below.note
    assert math.isnan(no_death.value) and no_death.note == "no test death by 6 months"
    # h = 9 < first bin end (10): every S(9) = 1, the AUC is 0.5 and says it means nothing
    assert flat.value == pytest.approx(0.5) and "carries no information" in flat.note
    assert math.isnan(at_end.value) and "[5, 25)" in at_end.note
    assert math.isnan(beyond.value)
    with pytest.raises(SurvivalInputError, match="horizons must be > 0"):
        time_dependent_auc(tr_t, tr_e, te_t, te_e, surv, edges, [0.0])
    with pytest.raises(SurvivalInputError, match="surv has 5 rows but there are 6 test cases"):
        time_dependent_auc(tr_t, tr_e, te_t, te_e, surv[:5], edges, [12.0])


# --------------------------------------------------------------------------------------------
# integrated Brier score
# --------------------------------------------------------------------------------------------


def test_ibs_is_zero_for_perfect_and_quarter_for_coin_flip_curves() -> None:
    # deaths exactly at the bin ends; each curve drops to 0 at its own death: Brier 0 throughout
    edges = [0.0, 10.0, 20.0, 30.0, 40.0]
    te_t, te_e = np.array([10.0, 20, 30, 40]), np.array([1, 1, 1, 0], bool)
    perfect = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]], float)
    tr_t, tr_e = np.arange(1.0, 51.0), np.ones(50, bool)
    grid = np.linspace(10, 39, 30)
    assert integrated_brier(tr_t, tr_e, te_t, te_e, perfect, edges, grid).value == 0.0
    # one bin step too late (S at the bin start) would not be perfect: the convention matters
    late = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], float)
    assert integrated_brier(tr_t, tr_e, te_t, te_e, late, edges, grid).value > 0.1
    half = np.full((4, 4), 0.5)
    coin = integrated_brier(tr_t, tr_e, te_t, te_e, half, [0.0, 1.0, 2.0, 3.0, 4.0], grid)
    assert coin.value == pytest.approx(0.25)


@pytest.mark.parametrize("seed", [0, 3])
def test_ibs_matches_grafs_formula_with_censoring(seed: int) -> None:
    tr_t, tr_e, te_t, te_e, surv, edges = _random_split(seed)
    lo, hi = evaluable_range(tr_t, te_t)
    grid = np.linspace(lo, np.nextafter(hi, 0), 40)
    got = integrated_brier(tr_t, tr_e, te_t, te_e, surv, edges, grid)
    tau = tr_t.max()
    ct, ce = np.minimum(te_t, tau), te_e & (te_t <= tau)
    ref = _ibs_by_hand(tr_t, tr_e, ct, ce, survival_at(surv, edges, grid), grid)
    assert got.value == pytest.approx(ref)
    assert 0 < got.value < 0.5


def test_ibs_grid_outside_follow_up_is_nan_with_note() -> None:
    tr_t, tr_e = np.arange(1.0, 31.0), np.ones(30, bool)
    te_t, te_e = np.array([5.0, 8, 12, 25]), np.array([1, 0, 1, 1], bool)
    surv = np.full((4, 2), 0.5)
    out = integrated_brier(tr_t, tr_e, te_t, te_e, surv, [0, 10, 40], [1.0, 20.0])
    assert math.isnan(out.value) and "outside the evaluable follow-up [5, 25)" in out.note
    with pytest.raises(SurvivalInputError, match="at least two distinct times"):
        integrated_brier(tr_t, tr_e, te_t, te_e, surv, [0, 10, 40], [6.0, 6.0])


# --------------------------------------------------------------------------------------------
# bootstrap CI of the c-index
# --------------------------------------------------------------------------------------------


def test_bootstrap_is_seeded_and_percentile_by_hand() -> None:
    rng = np.random.default_rng(5)
    t = rng.exponential(20, 80)
    e = rng.random(80) < 0.6
    r = -t + rng.normal(0, 15, 80)
    a = bootstrap_cindex(t, e, r, n_bootstrap=300, seed=11)
    b = bootstrap_cindex(t, e, r, n_bootstrap=300, seed=11)
    c = bootstrap_cindex(t, e, r, n_bootstrap=300, seed=12)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.estimate == concordance_index(t, e, r)
    assert a.low < a.estimate < a.high and a.n_valid == 300 and a.level == 0.95
    # the same resamples drawn by hand give the same percentile interval
    hand_rng = np.random.default_rng(11)
    vals = []
    for _ in range(300):
        idx = hand_rng.integers(0, 80, 80)
        vals.append(concordance_index_censored(e[idx], t[idx], r[idx])[0])
    assert (a.low, a.high) == tuple(np.quantile(vals, [0.025, 0.975]))


def test_bootstrap_drops_undefined_resamples() -> None:
    t = np.array([1.0, 2.0, 3.0, 4.0])
    e = np.array([True, False, False, False])
    r = np.array([4.0, 3.0, 2.0, 1.0])
    ci = bootstrap_cindex(t, e, r, n_bootstrap=200, seed=0)
    # the resample lacks the only death in about (3/4)^4 = 32 % of draws
    assert 100 < ci.n_valid < 180
    assert ci.low == ci.high == 1.0
    with pytest.raises(SurvivalInputError, match="n_bootstrap must be a positive integer"):
        bootstrap_cindex(t, e, r, n_bootstrap=0)
    with pytest.raises(SurvivalInputError, match=r"level must be in \(0, 1\)"):
        bootstrap_cindex(t, e, r, level=1.5)


# --------------------------------------------------------------------------------------------
# pooled out-of-fold predictions
# --------------------------------------------------------------------------------------------


def _pooled(n: int = 45, n_folds: int = 3, seed: int = 7) -> tuple[pd.DataFrame, dict]:
    """Pooled predictions of two models on one cohort, plus per-fold bin edges."""
    rng = np.random.default_rng(seed)
    t = np.round(rng.exponential(25, n), 2) + 0.5
    e = rng.random(n) < 0.65
    folds = np.arange(n) % n_folds
    rows, edges = [], {}
    for model, noise in (("ours", 0.3), ("snn", 1.0)):
        hazards = 1 / (1 + np.exp(np.log(t)[:, None] - 3 + rng.normal(0, noise, (n, 4))))
        surv = np.cumprod(1 - hazards, axis=1)
        for k in range(n_folds):
            train = t[(folds != k) & e]
            edges[("COH", model, k)] = [
                0.0,
                *np.quantile(train, [0.25, 0.5, 0.75]).tolist(),
                float(t.max()) + 1,
            ]
        for i in range(n):
            rows.append(
                {
                    "case_id": f"C{i:03d}",
                    "fold": int(folds[i]),
                    "risk": -float(surv[i].sum()),
                    **{f"surv_{j}": float(surv[i, j]) for j in range(4)},
                    "survival_months": float(t[i]),
                    "event": bool(e[i]),
                    "censorship": int(not e[i]),
                    "model": model,
                    "cohort": "COH",
                    "model_selection": "last_epoch",
                    "encoder_weights": "random-init" if model == "ours" else "none",
                }
            )
    return pd.DataFrame(rows), edges


def test_evaluate_predictions_per_fold_and_summary() -> None:
    preds, edges = _pooled()
    per_fold, summary = evaluate_predictions(preds, edges, n_bootstrap=50, seed=3)
    assert set(summary["metric"]) == {"cindex_pooled", "td_auc", "ibs"}
    ours = preds[preds["model"] == "ours"]
    horizons = default_horizons(ours["survival_months"], ours["event"])
    auc = summary[(summary["model"] == "ours") & (summary["metric"] == "td_auc")]
    assert auc["horizon"].to_numpy() == pytest.approx(horizons)
    # fold 1, first horizon, recomputed with the training cases = the other folds
    test, train = ours[ours["fold"] == 1], ours[ours["fold"] != 1]
    (direct,) = time_dependent_auc(
        train["survival_months"],
        train["event"],
        test["survival_months"],
        test["event"],
        test[[f"surv_{j}" for j in range(4)]].to_numpy(),
        edges[("COH", "ours", 1)],
        horizons[:1],
    )
    row = per_fold[
        (per_fold["model"] == "ours") & (per_fold["fold"] == 1) & (per_fold["metric"] == "td_auc")
    ].iloc[0]
    assert row["value"] == pytest.approx(direct.value)
    # the summary is mean and sample std over the folds
    vals = per_fold[
        (per_fold["model"] == "ours")
        & (per_fold["metric"] == "td_auc")
        & (per_fold["horizon"] == horizons[0])
    ]["value"]
    first = auc.iloc[0]
    assert first["value"] == pytest.approx(vals.mean())
    assert first["std"] == pytest.approx(vals.std(ddof=1))
    assert first["n_folds_defined"] == 3 and first["horizon_source"] == "q0.25 of death times"
    c = summary[(summary["model"] == "snn") & (summary["metric"] == "cindex_pooled")].iloc[0]
    snn = preds[preds["model"] == "snn"]
    assert c["value"] == concordance_index(snn["survival_months"], snn["event"], snn["risk"])
    assert c["ci_low"] < c["value"] < c["ci_high"] and c["n_bootstrap"] == 50
    ibs = summary[summary["metric"] == "ibs"]
    assert ibs["value"].between(0, 0.5).all() and ibs["note"].str.contains("IBS over").all()


def test_evaluate_predictions_configured_horizon_beyond_follow_up_is_reported_not_fatal() -> None:
    preds, edges = _pooled()
    _, summary = evaluate_predictions(
        preds, edges, horizons=[10.0, 500.0], ibs_range=[0.0, 1000.0], n_bootstrap=20
    )
    far = summary[(summary["metric"] == "td_auc") & (summary["horizon"] == 500.0)]
    assert far["value"].isna().all() and (far["n_folds_defined"] == 0).all()
    assert far["note"].str.contains("horizon 500 outside the evaluable follow-up").all()
    near = summary[(summary["metric"] == "td_auc") & (summary["horizon"] == 10.0)]
    assert near["value"].notna().all() and (near["horizon_source"] == "configured").all()
    ibs = summary[summary["metric"] == "ibs"]
    assert ibs["value"].notna().all()
    assert ibs["note"].str.contains("clipped to what every fold can evaluate").all()


def test_evaluate_predictions_errors() -> None:
    preds, edges = _pooled()
    del edges[("COH", "snn", 2)]
    with pytest.raises(ValueError, match="no bin edges for cohort=COH model=snn fold=2"):
        evaluate_predictions(preds, edges, n_bootstrap=5)
    with pytest.raises(ValueError, match=r"lack column\(s\) \['risk'\]"):
        evaluate_predictions(preds.drop(columns="risk"), edges)
    bad = preds.copy()
    bad.loc[(bad["model"] == "snn") & (bad["case_id"] == "C001"), "survival_months"] = 99.0
    with pytest.raises(ValueError, match=r"case\(s\) \['C001'\] have different"):
        evaluate_predictions(bad, edges)


def test_write_metrics_outputs_from_files(tmp_path: Path) -> None:
    preds, edges = _pooled()
    files = []
    for (cohort, model, fold), e in edges.items():
        d = tmp_path / cohort / "train" / model / f"fold{fold}"
        d.mkdir(parents=True)
        sub = preds[(preds["model"] == model) & (preds["fold"] == fold)]
        sub.to_parquet(d / "predictions.parquet")
        meta = {"cohort": cohort, "model": model, "fold": fold, "bin_edges": e}
        (d / "meta.json").write_text(json.dumps(meta))
        files.append(d / "predictions.parquet")
    # keyed by (cohort, model, fold, seed); predictions and meta without a seed read as seed 0
    assert read_bin_edges(files) == {(*k, 0): pytest.approx(v) for k, v in edges.items()}
    out = tmp_path / "tables"
    summary = write_metrics_outputs(
        files,
        out_csv=out / "metrics.csv",
        out_md=out / "metrics.md",
        folds_tsv=out / "metrics_folds.tsv",
        model_order=["snn", "ours"],
        cohort_order=["COH"],
        n_bootstrap=30,
        out_prov=out / "metrics.provenance.rst",
    )
    csv = pd.read_csv(out / "metrics.csv")
    assert csv["model"].drop_duplicates().tolist() == ["snn", "ours"]
    assert len(csv) == len(summary) == 2 * (1 + 3 + 1)
    md = (out / "metrics.md").read_text()
    assert md.startswith("### COH\n")
    assert "| Model | c-index pooled [95% CI] | AUC(" in md and "| IBS |" in md
    assert "| SNN | " in md and "| Ours | " in md
    assert "30 resamples, seed 0" in md and "encoder weights: random-init for ours" in md
    assert len(pd.read_csv(out / "metrics_folds.tsv", sep="\t")) == 2 * 3 * 4
    assert "``random-init``" in (out / "metrics.provenance.rst").read_text()
    (files[0].parent / "meta.json").unlink()
    with pytest.raises(FileNotFoundError, match="meta.json is missing"):
        read_bin_edges(files)
