"""Paired comparisons: the bootstrap CI of a c-index difference and the test over runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mmsurv.evaluate.paired import paired_bootstrap_delta, paired_runs_test
from mmsurv.evaluate.stats import SurvivalInputError, concordance_index


def _cohort(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times from an exponential model whose log-hazard is x, ~30 % censored."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t_event = rng.exponential(np.exp(-x))
    t_cens = rng.exponential(2.5, size=n)
    return np.minimum(t_event, t_cens), t_event <= t_cens, x


def test_identical_models_give_p_one_and_a_zero_interval() -> None:
    assert paired_runs_test([0.6, 0.62, 0.58, 0.61, 0.64], [0.6, 0.62, 0.58, 0.61, 0.64]) == 1.0
    time, event, x = _cohort()
    d = paired_bootstrap_delta(time, event, x, x, n_bootstrap=200, seed=1)
    assert d.delta == 0.0 and d.ci_low == 0.0 and d.ci_high == 0.0 and d.n_valid == 200


def test_a_model_better_on_every_run_gets_a_small_p() -> None:
    rng = np.random.default_rng(0)
    b = rng.uniform(0.55, 0.65, size=15)  # 5 folds x 3 seeds
    a = b + rng.uniform(0.01, 0.03, size=15)
    assert paired_runs_test(a, b) < 0.001
    assert paired_runs_test(b, a) == paired_runs_test(a, b)  # two-sided
    # 5 runs cannot reach 0.05 with any rank test: the exact floor is 2/32
    assert paired_runs_test(a[:5], b[:5]) == pytest.approx(0.0625)
    assert math.isnan(paired_runs_test([math.nan], [0.5]))


def test_bootstrap_interval_excludes_zero_for_a_clearly_better_risk() -> None:
    time, event, x = _cohort()
    noise = np.random.default_rng(5).normal(scale=3.0, size=len(x))
    d = paired_bootstrap_delta(time, event, x, x + noise, n_bootstrap=300, seed=2)
    assert d.delta == pytest.approx(
        concordance_index(time, event, x) - concordance_index(time, event, x + noise)
    )
    assert 0 < d.ci_low < d.delta < d.ci_high
    again = paired_bootstrap_delta(time, event, x, x + noise, n_bootstrap=300, seed=2)
    assert again == d  # seeded


def test_unpaired_inputs_are_refused() -> None:
    with pytest.raises(SurvivalInputError, match="one length"):
        paired_runs_test([0.5, 0.6], [0.5])
    time, event, x = _cohort(20)
    with pytest.raises(SurvivalInputError, match="same length"):
        paired_bootstrap_delta(time, event, x, x[:-1])


def _predictions(n_folds: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-fold risks of 'good' (the true log-hazard), 'same' (= ours) and 'ours' (noisy)."""
    time, event, x = _cohort(400, seed=3)
    noisy = x + np.random.default_rng(9).normal(scale=2.0, size=len(x))
    fold = np.arange(len(x)) % n_folds
    frames = []
    for model, risk in (("good", x), ("same", noisy), ("ours", noisy)):
        frames.append(
            pd.DataFrame(
                {
                    "cohort": "C",
                    "model": model,
                    "case_id": [f"c{i}" for i in range(len(x))],
                    "fold": fold,
                    "survival_months": time,
                    "event": event,
                    "risk": risk,
                }
            )  # fmt: skip
        )
    preds = pd.concat(frames, ignore_index=True)
    per_run = (
        preds.groupby(["cohort", "model", "fold"])
        .apply(
            lambda g: concordance_index(g.survival_months, g.event, g.risk), include_groups=False
        )
        .rename("cindex")
        .reset_index()
    )
    return per_run, preds


def test_paired_table_against_the_reference_model(tmp_path) -> None:
    from mmsurv.evaluate.paired import write_paired_outputs

    per_run, preds = _predictions()
    per_run_tsv = tmp_path / "cindex_folds.tsv"
    per_run.to_csv(per_run_tsv, sep="\t", index=False)
    files = []
    for model, g in preds.groupby("model"):
        files.append(tmp_path / f"{model}.parquet")
        g.to_parquet(files[-1])
    table = write_paired_outputs(
        files,
        folds_tsv=per_run_tsv,
        out_csv=tmp_path / "paired.csv",
        out_md=tmp_path / "paired.md",
        reference="ours",
        n_bootstrap=200,
        seed=0,
    ).set_index("model")
    assert list(table.index) == ["good", "same"]  # the reference is not compared with itself
    assert table.loc["same", "p_value"] == 1.0 and table.loc["same", "pooled_delta"] == 0.0
    good = table.loc["good"]
    assert good["n_runs"] == 5 and good["n_cases"] == 400 and good["mean_run_delta"] > 0
    assert good["p_value"] == pytest.approx(0.0625)  # better on all 5 folds: the floor of 5 runs
    assert 0 < good["ci_low"] < good["pooled_delta"] < good["ci_high"]
    md = (tmp_path / "paired.md").read_text()
    assert "Wilcoxon signed-rank" in md and "| C | good | ours | 5 |" in md
    with pytest.raises(ValueError, match="reference model 'mcat'"):
        write_paired_outputs(
            files, folds_tsv=per_run_tsv, out_csv=tmp_path / "x.csv", out_md=tmp_path / "x.md",
            reference="mcat",
        )  # fmt: skip
