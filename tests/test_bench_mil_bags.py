"""benchmarks/bench_mil_bags.py: the generator plants what it says, and --tiny runs end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmsurv.bags.data import read_bags
from mmsurv.evaluate.stats import concordance_index

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench_mil_bags", REPO / "benchmarks/bench_mil_bags.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_mil_bags"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def small(bench):
    return replace(bench.GenConfig(), n_cases=300, min_patches=200, max_patches=400, dim=64)


def test_rare_phenotype_is_rare_and_tracks_prevalence(bench, small):
    rng = np.random.default_rng(0)
    parts = bench.draw_parts(rng, small)
    shares, prevalence = [], parts["prevalence"][:40]
    for i in range(40):
        bag, kind = bench.case_bag(rng, small, parts, i, 400)
        assert bag.shape == (400, small.dim) and bag.dtype == np.float32
        shares.append(np.mean(kind == small.n_common))
    assert max(shares) <= 0.05 + 1 / 400
    assert np.corrcoef(shares, prevalence)[0, 1] > 0.95


def test_planted_risk_recoverable_by_oracle(bench, small, tmp_path):
    """The true log-hazard ranks survival well; the prevalence read off the bags carries it."""
    truth = bench.generate_cohort(small, tmp_path, n_folds=5)
    assert {"clinical.tsv", "omics.parquet", "families.json", "bags.h5", "splits.tsv"} <= {
        p.name for p in tmp_path.iterdir()
    }
    t, e = truth["survival_months"], truth["event"].to_numpy(bool)
    assert 0.2 < 1 - e.mean() < 0.6  # censoring
    assert concordance_index(t, e, truth["eta"]) > 0.6
    # Oracle reading the bags: share of patches nearest the rare centroid (site shift removed).
    parts = bench.draw_parts(np.random.default_rng(small.seed), small)
    bags = read_bags(tmp_path / "bags.h5", truth["case_id"].tolist())
    est = []
    for i, case in enumerate(truth["case_id"]):
        x = bags[case] - parts["sites"][parts["site"][i]]
        d = ((x[:, None, :] - parts["centroids"][None]) ** 2).sum(-1)
        est.append(np.mean(d.argmin(1) == small.n_common))
    assert np.corrcoef(est, truth["prevalence"])[0, 1] > 0.95
    assert concordance_index(t, e, np.asarray(est)) > 0.55
    families = json.loads((tmp_path / "families.json").read_text())["families"]
    assert len(families) == 6 and all(len(c) <= small.max_family_genes for c in families.values())
    omics = pd.read_parquet(tmp_path / "omics.parquet")
    assert len(omics) == small.n_cases


def test_tiny_mode_runs_one_model_one_fold(bench, tmp_path):
    doc = bench.main(["--tiny", "--out", str(tmp_path), "--work", str(tmp_path / "work")])
    assert [r["spec"] for r in doc["summary"]] == ["ours:kmeans"]
    row = doc["summary"][0]
    assert row["n_runs"] == 1 and 0.0 <= row["cindex_mean"] <= 1.0
    assert row["s_per_step"] > 0 and row["peak_rss_mb"] > 0
    assert (tmp_path / "mil_bags.json").is_file()
    md = (tmp_path / "mil_bags.md").read_text()
    assert "ours:kmeans" in md and "Command:" in md and "Not run:" in md
