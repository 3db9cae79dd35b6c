"""Site-preserved folds (splits.source site): no tissue source site in two held-out folds."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmsurv.bags.sites import case_sites, make_site_folds

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "tcga_genomics"


def _cohort(sizes: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Cases TCGA-<site>-<nnnn> with random times and ~40 % events."""
    rng = np.random.default_rng(seed)
    ids = [f"TCGA-{s}-{i:04d}" for s, k in sizes.items() for i in range(k)]
    return pd.DataFrame(
        {"survival_months": rng.uniform(1, 100, len(ids)), "event": rng.random(len(ids)) < 0.4},
        index=pd.Index(ids, name="case_id"),
    )


def test_every_site_stays_in_one_fold_and_folds_carry_events() -> None:
    sizes = {f"{chr(65 + i)}{i % 10}": 5 + 3 * i for i in range(14)}
    clinical = _cohort(sizes)
    sites = case_sites(clinical)
    folds = make_site_folds(clinical, sites, n_folds=5, seed=3)
    assert folds is not None and sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]
    by_site = folds.assign(site=sites.to_numpy()).groupby("site")["fold"].nunique()
    assert (by_site == 1).all()
    assert list(folds["case_id"]) == list(clinical.index)
    events = clinical["event"].groupby(folds.set_index("case_id")["fold"]).sum()
    assert (events > 0).all()
    # seeded: the same folds again, other folds with another seed
    assert folds.equals(make_site_folds(clinical, sites, n_folds=5, seed=3))
    assert not folds.equals(make_site_folds(clinical, sites, n_folds=5, seed=4))


def test_site_from_barcode_first_then_the_site_column() -> None:
    clinical = pd.DataFrame(
        {"site": [5, "Q1", "zz"], "event": [True, False, True], "survival_months": [1, 2, 3]},
        index=["TCGA-05-4249", "case-b", "TCGA-A2-0001"],
    )
    # the barcode wins over a site column that lost its leading zero; other ids use the column
    assert case_sites(clinical).to_dict() == {
        "TCGA-05-4249": "05",
        "case-b": "Q1",
        "TCGA-A2-0001": "A2",
    }


def test_case_without_a_site_is_named() -> None:
    clinical = pd.DataFrame(
        {"event": [True, False], "survival_months": [1.0, 2.0]}, index=["TCGA-05-4249", "p-17"]
    )
    with pytest.raises(ValueError, match=r"clinical.tsv: .*none for cases \['p-17'\]"):
        case_sites(clinical, "clinical.tsv")


def test_a_site_too_big_for_one_fold_falls_back_with_a_warning(caplog) -> None:
    clinical = _cohort({"AA": 40, "BB": 10, "CC": 10, "DD": 10, "EE": 10, "FF": 10})
    with caplog.at_level(logging.WARNING):
        assert make_site_folds(clinical, case_sites(clinical), n_folds=5) is None
    assert "site(s) {'AA': 40} hold more than 1/5 of the 90 cases" in caplog.text
    few = _cohort({"AA": 10, "BB": 10})
    assert make_site_folds(few, case_sites(few), n_folds=5) is None


@pytest.mark.skipif(not REAL.is_dir(), reason="the published MCAT tables are not here")
@pytest.mark.parametrize("cancer", ["blca", "luad"])
def test_real_tcga_tables_33_sites_never_split(cancer: str) -> None:
    table = pd.read_csv(
        REAL / f"tcga_{cancer}_all_clean.csv.gz",
        usecols=["case_id", "site", "survival_months", "censorship"],
        dtype={"site": str},
    ).drop_duplicates("case_id")
    clinical = table.set_index("case_id").assign(event=lambda t: t["censorship"] == 0)
    sites = case_sites(clinical)
    assert sites.nunique() == 33
    folds = make_site_folds(clinical, sites, n_folds=5, seed=1)
    assert folds is not None
    assert (folds.assign(site=sites.to_numpy()).groupby("site")["fold"].nunique() == 1).all()
    assert folds["fold"].value_counts().min() >= len(clinical) // 10


def test_splits_step_with_source_site_keeps_sites_whole(tmp_path: Path) -> None:
    """make_cohort_splits(site_preserved=True), as rule splits runs it with splits.source site."""
    from mmsurv.bags.data import read_splits
    from mmsurv.bags.stage import make_cohort_splits

    clinical = _cohort({f"S{i}": 4 + i for i in range(8)})
    clinical.assign(event=clinical["event"].astype(int)).to_csv(tmp_path / "clinical.tsv", sep="\t")
    pd.DataFrame({"TP53_rnaseq": 1.0}, index=clinical.index).to_parquet(tmp_path / "omics.parquet")
    kwargs = {
        "clinical_tsv": tmp_path / "clinical.tsv",
        "omics_parquet": tmp_path / "omics.parquet",
        "slide_cases": list(clinical.index),
        "n_folds": 4,
        "seed": 0,
    }
    make_cohort_splits(out_tsv=tmp_path / "site.tsv", site_preserved=True, **kwargs)
    folds = read_splits(tmp_path / "site.tsv").set_index("case_id")["fold"]
    assert (folds.groupby(case_sites(clinical).reindex(folds.index)).nunique() == 1).all()
    # the default, case-level folds, split sites (the reason for `site`)
    make_cohort_splits(out_tsv=tmp_path / "case.tsv", **kwargs)
    folds = read_splits(tmp_path / "case.tsv").set_index("case_id")["fold"]
    assert (folds.groupby(case_sites(clinical).reindex(folds.index)).nunique() > 1).any()
