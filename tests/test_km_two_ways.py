"""KM two ways: the optimistic cutpoint (maxstat on the held-out risks) beside the honest one
(each fold's maxstat cutpoint on its training cases' risks, applied to its held-out cases)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from test_linear_floors import _add_covariates  # tests/ is on sys.path (rootdir imports)
from test_train import DIM, make_cohort

from mmsurv.bags.data import read_splits
from mmsurv.evaluate.plots import HONEST_LABEL, OPTIMISTIC_LABEL, make_km_two_ways_figure
from mmsurv.evaluate.stage import honest_km, km_figure_from_predictions
from mmsurv.evaluate.stats import (
    honest_km_groups,
    logrank_test,
    maxstat_cutpoint,
    train_fold_cutpoints,
)
from mmsurv.training.train import train_fold

N_FOLDS = 3


def _cohort(n: int = 240, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Cases whose true risk z drives survival; fold k holds out cases i % 3 == k."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    t_event = rng.exponential(30.0 * np.exp(-z))
    t_cens = rng.uniform(10, 120, n)
    return z, np.minimum(t_event, t_cens), t_event <= t_cens, np.arange(n) % N_FOLDS


def _train_rows(z: np.ndarray, time: np.ndarray, event: np.ndarray, fold: np.ndarray, seed=1):
    """Each fold model's risks of its training cases: z on a fold-specific scale, plus noise."""
    rng = np.random.default_rng(seed)
    rows = [np.flatnonzero(fold != k) for k in range(N_FOLDS)]
    t_fold = np.concatenate([np.full(len(r), k) for k, r in enumerate(rows)])
    idx = np.concatenate(rows)
    scale = 1.0 + t_fold  # a different scale per fold: one pooled cutpoint would not fit
    risk = scale * (z[idx] + rng.normal(0, 0.3, len(idx)))
    return t_fold, risk, time[idx], event[idx], idx, scale


def _honest(test_risk: np.ndarray, data=None) -> dict:
    z, time, event, fold = data if data is not None else _cohort()
    t_fold, t_risk, t_time, t_event, _, _ = _train_rows(z, time, event, fold)
    return honest_km_groups(
        t_fold, t_risk, t_time, t_event, fold, test_risk, time, event, minprop=0.1, maxprop=0.9
    )


def test_perturbed_held_out_risks_leave_every_fold_cutpoint_unchanged() -> None:
    z, time, event, fold = data = _cohort()
    scale = 1.0 + fold
    base = _honest(scale * z, data)
    noise = np.random.default_rng(7).normal(0, 5, len(z))
    perturbed = _honest(-scale * z + noise, data)
    assert perturbed["cutpoints"] == base["cutpoints"]  # the cutpoints never saw the test risks
    assert [f["train_statistic"] for f in perturbed["folds"]] == [
        f["train_statistic"] for f in base["folds"]
    ]
    assert (perturbed["high"] != base["high"]).any()  # only the held-out assignment changed
    # each held-out case is high exactly when its risk exceeds its own fold's cutpoint
    cut = np.array([base["cutpoints"][k] for k in fold])
    np.testing.assert_array_equal(base["high"], scale * z > cut)
    # and the cutpoint is maxstat's on that fold's training cases alone
    t_fold, t_risk, t_time, t_event, _, _ = _train_rows(z, time, event, fold)
    rows = t_fold == 1
    assert (
        base["cutpoints"][1] == maxstat_cutpoint(t_time[rows], t_event[rows], t_risk[rows]).cutpoint
    )
    assert set(train_fold_cutpoints(t_fold, t_risk, t_time, t_event)) == {0, 1, 2}


def test_honest_p_is_small_for_a_real_signal_and_large_for_noise() -> None:
    z, time, event, fold = data = _cohort()
    good = _honest((1.0 + fold) * z, data)
    assert good["logrank_p"] < 1e-4
    assert good["n_low"] + good["n_high"] == len(z) and min(good["n_low"], good["n_high"]) > 20
    noise = np.random.default_rng(3).normal(size=len(z))
    bad = _honest(noise, data)
    assert bad["logrank_p"] > 0.05
    assert bad["cutpoints"] == good["cutpoints"] and all(
        np.isfinite(list(bad["cutpoints"].values()))
    )
    # the optimistic split of the same noise, chosen on the test risks, looks better than it is
    opt = maxstat_cutpoint(time, event, noise)
    high = noise > opt.cutpoint
    assert logrank_test(time, event, high).p_value < bad["logrank_p"]


def _frames(tmp_path: Path, seeds=(0,)) -> tuple[list[Path], list[Path]]:
    """predictions.parquet and train_risks.parquet of N_FOLDS fold runs per seed."""
    z, time, event, fold = _cohort()
    preds, trains = [], []
    for s in seeds:
        t_fold, t_risk, t_time, t_event, idx, _ = _train_rows(z, time, event, fold, seed=s + 1)
        for k in range(N_FOLDS):
            d = tmp_path / f"seed{s}" / f"fold{k}"
            d.mkdir(parents=True)
            held = fold == k
            common = {"fold": k, "seed": s, "model": "ours", "cohort": "SYN"}
            pd.DataFrame(
                {
                    "case_id": [f"c{i}" for i in np.flatnonzero(held)],
                    "risk": (1.0 + k) * z[held],
                    "survival_months": time[held],
                    "event": event[held],
                    "encoder_weights": "random-init",
                    "model_selection": "last_epoch",
                    **common,
                }
            ).to_parquet(d / "predictions.parquet")
            rows = t_fold == k
            pd.DataFrame(
                {
                    "case_id": [f"c{i}" for i in idx[rows]],
                    "risk": t_risk[rows],
                    "survival_months": t_time[rows],
                    "event": t_event[rows],
                    "inner_val": False,
                    **common,
                }
            ).to_parquet(d / "train_risks.parquet")
            preds.append(d / "predictions.parquet")
            trains.append(d / "train_risks.parquet")
    return preds, trains


def test_stage_writes_both_figures_and_both_sets_of_numbers(tmp_path: Path) -> None:
    preds, trains = _frames(tmp_path, seeds=(0, 1))
    out = tmp_path / "out"
    stats = km_figure_from_predictions(
        preds, train_risk_files=trains, cohort="SYN", out_png=out / "km.png",
        out_pdf=out / "km.pdf", out_json=out / "km.json", n_perm=0,
    )  # fmt: skip
    saved = json.loads((out / "km.json").read_text())
    assert (
        saved["seeds"] == [0, 1] and saved["n"] == 240
    )  # risks averaged over the seeds: each case once
    assert saved["optimistic_label"] == OPTIMISTIC_LABEL and saved["p_maxstat_lau92"] < 0.05
    honest = saved["honest"]
    assert honest["label"] == HONEST_LABEL and set(honest["cutpoints"]) == {"0", "1", "2"}
    assert honest["n_low"] + honest["n_high"] == 240 and honest["logrank_p"] < 1e-4
    assert set(honest["by_seed"]) == {"0", "1"} and len(honest["folds"]) == N_FOLDS
    assert stats["honest"]["cutpoints"][0] == honest["cutpoints"]["0"]
    image = mpimg.imread(out / "km.png")
    assert image.shape[1] > 1.6 * image.shape[0]  # two panels side by side
    # perturbing the held-out risks on disk changes no fold's cutpoint
    for p in preds:
        frame = pd.read_parquet(p)
        frame["risk"] = -frame["risk"] + np.random.default_rng(0).normal(0, 3, len(frame))
        frame.to_parquet(p)
    again = km_figure_from_predictions(
        preds, train_risk_files=trains, cohort="SYN", out_png=out / "km.png",
        out_pdf=out / "km.pdf", out_json=out / "km.json", n_perm=0,
    )  # fmt: skip
    assert again["honest"]["cutpoints"] == stats["honest"]["cutpoints"]
    assert again["cutpoint"] != stats["cutpoint"]  # the optimistic one follows the test risks


def test_train_risks_holding_a_held_out_case_are_refused(tmp_path: Path) -> None:
    preds, trains = _frames(tmp_path)
    p, t = pd.read_parquet(preds[0]), pd.read_parquet(trains[0])
    leaky = pd.concat(
        [t, p.head(1)[["case_id", "risk", "survival_months", "event", "fold", "seed"]]]
    )
    with pytest.raises(ValueError, match="train risks of fold 0 include its held-out case"):
        honest_km(p, leaky)


def test_two_ways_figure_has_both_labelled_panels() -> None:
    z, time, event, fold = _cohort(n=90)
    fig = make_km_two_ways_figure(
        time, event, z > 0.2, z > 0.0, title="SYN", cutpoint=0.2, p_maxstat=0.01, p_logrank=1e-3,
        honest_cutpoints={0: 0.1, 1: 0.0, 2: -0.1}, honest_p_logrank=0.02,
    )  # fmt: skip
    titles = [ax.get_title() for ax in fig.axes]
    assert any(OPTIMISTIC_LABEL in t and "maxstat p (Lau92) = 0.01" in t for t in titles)
    assert any(HONEST_LABEL in t and "log-rank p = 0.02" in t for t in titles)
    n_high = int((z > 0.0).sum())
    assert any(f"n high = {n_high} / n low = {90 - n_high}" in t for t in titles)
    plt.close(fig)
    # one empty honest group still draws (the held-out risks may all fall on one side)
    fig = make_km_two_ways_figure(
        time, event, z > 0.2, np.zeros(90, bool), title="SYN", cutpoint=0.2, p_maxstat=None,
        p_logrank=0.5, honest_cutpoints={0: 9.0}, honest_p_logrank=None,
    )  # fmt: skip
    assert any("log-rank p = n/a" in ax.get_title() for ax in fig.axes)
    plt.close(fig)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    paths = make_cohort(tmp_path_factory.mktemp("km2"), n=40, seed=5)
    _add_covariates(paths["clinical_tsv"])
    return paths


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("cox_clinical", {}),
        ("snn", {"epochs": 1, "model_selection": "inner_val", "model_kwargs": {}}),
        ("attn_mil", {"epochs": 1, "max_patches": 4, "model_kwargs": {"path_dim": DIM}}),
    ],
)
def test_train_job_writes_the_training_cases_risks(
    cohort: dict[str, str], tmp_path: Path, model: str, params: dict
) -> None:
    train_fold(
        cohort="SYN", model_name=model, fold=2, out_dir=str(tmp_path), seed=0, device="cpu",
        params={"num_threads": 1, **params}, **cohort,
    )  # fmt: skip
    splits = read_splits(cohort["splits_tsv"])
    held = set(splits.loc[splits["fold"] == 2, "case_id"])
    train = pd.read_parquet(tmp_path / "train_risks.parquet")
    pred = pd.read_parquet(tmp_path / "predictions.parquet")
    assert set(train["case_id"]) == set(splits["case_id"]) - held and train["case_id"].is_unique
    assert not held & set(train["case_id"]) and set(pred["case_id"]) == held
    assert set(pred.columns) <= set(train.columns) and train["inner_val"].dtype == bool
    assert (train["fold"] == 2).all() and np.isfinite(train["risk"]).all()
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert list(train["case_id"]) == meta["train_case_ids"]
    inner = set(meta.get("inner_val_case_ids") or [])
    assert set(train.loc[train["inner_val"], "case_id"]) == inner
    assert bool(inner) == (params.get("model_selection") == "inner_val")
