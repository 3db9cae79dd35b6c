"""Repeated runs (training.seeds): one train job per seed, tables over all fold x seed runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_metrics import _pooled  # tests/ is on sys.path (rootdir imports)
from test_workflow import _job_counts, copy_repo, snakemake

from mmsurv.evaluate.cindex_tables import (
    derive_notes,
    fold_cindex,
    summarize_cindex,
    write_cindex_tables,
)
from mmsurv.evaluate.metrics import evaluate_predictions
from mmsurv.evaluate.paired import paired_table
from mmsurv.evaluate.runs import runs_phrase, seed_mean_risk
from mmsurv.evaluate.stats import concordance_index


def _with_seeds(preds: pd.DataFrame, seeds: list[int], shift: float = 0.05) -> pd.DataFrame:
    """The predictions once per seed, each seed's risks perturbed differently (seeded)."""
    out = []
    for s in seeds:
        rng = np.random.default_rng(s)
        out.append(preds.assign(seed=s, risk=preds["risk"] + shift * rng.normal(size=len(preds))))
    return pd.concat(out, ignore_index=True)


def test_two_seeds_double_the_train_jobs_of_the_dry_run(tmp_path: Path) -> None:
    """seeds [1, 2] plan twice the train jobs of one seed (cohorts x models x folds, as
    test_workflow's demo dry run counts for seeds [1]); one dry run, to keep the test cheap."""
    repo = copy_repo(tmp_path)
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    assert config["training"]["seeds"] == [1]
    # genomics-only models: no slide is tiled, so the DAG (and the test) stays small
    config["training"].update(models=["snn", "coxnet_omic"], seeds=[1, 2])
    config["evaluation"]["km_model"] = "snn"
    (repo / "seeds.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(repo, "-n", "--configfile", "seeds.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    counts = _job_counts(log)
    one_seed = len(config["cohorts"]) * 2 * config["splits"]["n_folds"]
    assert counts["train"] == 2 * one_seed
    assert counts["cindex_table"] == counts["metrics_table"] == 1  # one table over all runs
    cohort = config["cohorts"][0]
    assert f"results/{cohort}/train/snn/seed2/fold4/predictions.parquet" in log


def test_cindex_table_is_over_all_fold_x_seed_runs(tmp_path: Path) -> None:
    values = {(0, 1): 0.60, (1, 1): 0.70, (2, 1): 0.65, (0, 2): 0.62, (1, 2): 0.74, (2, 2): 0.55}
    per_run = pd.DataFrame(
        [
            {"cohort": "C", "model": "snn", "fold": k, "seed": s, "cindex": v}
            for (k, s), v in values.items()
        ]
    ).assign(model_selection="last_epoch", encoder_weights="none")
    summary = summarize_cindex(per_run, model_order=["snn"])
    row = summary.iloc[0]
    v = np.array(list(values.values()))
    assert row["mean"] == pytest.approx(v.mean()) and row["std"] == pytest.approx(v.std(ddof=1))
    assert (row["n_folds"], row["n_seeds"], row["n_runs"]) == (3, 2, 6)
    assert runs_phrase(per_run) == "3 folds x 2 seeds = 6 runs"
    notes = derive_notes(per_run)
    assert "std: sample std (ddof=1) over 3 folds x 2 seeds = 6 runs" in notes
    csv, md = tmp_path / "c.csv", tmp_path / "c.md"
    write_cindex_tables(per_run, csv, md, model_order=["snn"], cohort_order=["C"])
    assert pd.read_csv(csv).loc[0, "n_runs"] == 6
    assert "3 folds x 2 seeds = 6 runs" in md.read_text()


def test_duplicate_fold_seed_runs_are_refused() -> None:
    per_run = pd.DataFrame(
        {"cohort": "C", "model": "snn", "fold": [0, 1, 1], "seed": [1, 1, 1]}
    ).assign(cindex=0.6)
    with pytest.raises(
        ValueError, match=r"repeated \(cohort, model, fold, seed\).*\['C', 'snn', 1, 1\]"
    ):
        summarize_cindex(per_run)
    summarize_cindex(per_run.assign(seed=[1, 1, 2]))  # same fold, other seed: two runs
    preds, _ = _pooled()
    twice = pd.concat([_with_seeds(preds, [1]), _with_seeds(preds, [1]).head(1)])
    with pytest.raises(ValueError, match=r"repeated \(cohort, model, seed, case_id\)"):
        fold_cindex(twice)


def test_per_run_rows_and_pooled_risk_with_two_seeds() -> None:
    preds, edges = _pooled()
    two = _with_seeds(preds, [1, 2])
    per_run = fold_cindex(two)
    assert len(per_run) == 2 * 3 * 2  # models x folds x seeds
    assert set(per_run["seed"]) == {1, 2}
    # pooled quantities: one row per case, its risk the mean over the seeds
    pooled = seed_mean_risk(two)
    assert len(pooled) == len(preds) and (pooled["n_seeds"] == 2).all()
    mine = pooled[pooled["model"] == "ours"].set_index("case_id")["risk"]
    by_hand = two[two["model"] == "ours"].groupby("case_id")["risk"].mean()
    pd.testing.assert_series_equal(mine.sort_index(), by_hand.sort_index(), check_names=False)
    per_fold, summary = evaluate_predictions(two, edges, n_bootstrap=20, seed=0)
    assert {(k, s) for k, s in zip(per_fold["fold"], per_fold["seed"], strict=True)} == {
        (k, s) for k in range(3) for s in (1, 2)
    }
    c = summary[(summary["metric"] == "cindex_pooled") & (summary["model"] == "ours")].iloc[0]
    ours = pooled[pooled["model"] == "ours"]
    expected = concordance_index(ours["survival_months"], ours["event"], ours["risk"])
    assert c["value"] == pytest.approx(expected) and c["n_cases"] == len(ours)
    assert c["n_seeds"] == 2 and c["n_folds"] == 6  # the td-AUC/IBS mean is over 6 runs
    assert "mean over the seeds" in c["note"]


def test_paired_runs_pair_on_fold_and_seed() -> None:
    preds, _ = _pooled()
    two = _with_seeds(preds, [1, 2])
    per_run = fold_cindex(two)
    # shuffle the rows: pairing must follow (fold, seed), not row order
    per_run = per_run.sample(frac=1.0, random_state=0).reset_index(drop=True)
    table = paired_table(per_run, two, reference="ours", n_bootstrap=20)
    row = table.iloc[0]
    assert row["n_runs"] == 6
    wide = per_run.pivot_table(index=["fold", "seed"], columns="model", values="cindex")
    assert row["mean_run_delta"] == pytest.approx((wide["snn"] - wide["ours"]).mean())
    assert row["n_cases"] == len(preds) // 2  # each case once, its risk averaged over seeds
