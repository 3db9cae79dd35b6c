"""mmsurv.bags.omics: gene families, family columns, omics bags, training-fold standardisation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mmsurv.bags.omics import (
    Standardizer,
    build_omics_bags,
    family_columns,
    read_families_json,
)
from mmsurv.genes import load_gene_families


@pytest.fixture
def families_csv(tmp_path):
    path = tmp_path / "fam.csv"
    path.write_text("Tumor Suppressors,Oncogenes\nTP53,MYC\nPTEN,KRAS\nRB1,\n")
    return path


def test_load_gene_families_keeps_order_and_drops_blanks(families_csv):
    fams = load_gene_families(families_csv)
    assert list(fams) == ["Tumor Suppressors", "Oncogenes"]
    assert fams["Oncogenes"] == ["MYC", "KRAS"]
    assert fams["Tumor Suppressors"] == ["TP53", "PTEN", "RB1"]


def test_family_columns_mcat_convention():
    cols = ["TP53_rnaseq", "TP53_cnv", "MYC_mut", "MYCN_rnaseq", "PTEN_other", "KRAS"]
    out = family_columns(cols, {"ts": ["TP53", "PTEN"], "onc": ["MYC", "KRAS"]})
    assert out == {"ts": ["TP53_rnaseq", "TP53_cnv"], "onc": ["MYC_mut"]}


def test_family_columns_empty_family_is_named():
    with pytest.raises(ValueError, match="'cytokines'"):
        family_columns(["TP53_rnaseq"], {"ts": ["TP53"], "cytokines": ["IL6"]})


def _omics_tsv(tmp_path, table: pd.DataFrame):
    path = tmp_path / "omics.tsv"
    table.to_csv(path, sep="\t", index=False)
    return path


def test_build_omics_bags(tmp_path, families_csv):
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "case_id": ["001", "002", "003", "004"],
            "TP53_rnaseq": rng.normal(size=4),
            "TP53_cnv": [1.0, 1.0, 1.0, 1.0],  # zero variance
            "PTEN_rnaseq": [np.nan] * 4,  # all missing
            "RB1_cnv": rng.normal(size=4),
            "MYC_rnaseq": rng.normal(size=4),
            "KRAS_mut": [0, 1, 0, 1],
            "EGFR_rnaseq": rng.normal(size=4),  # in no family
        }
    )
    pq, js = tmp_path / "out" / "omics.parquet", tmp_path / "out" / "families.json"
    build_omics_bags(_omics_tsv(tmp_path, table), families_csv, pq, js)
    got = pd.read_parquet(pq)
    assert got.index.name == "case_id"
    assert list(got.index) == ["001", "002", "003", "004"]  # ids stay strings
    assert list(got.columns) == ["TP53_rnaseq", "RB1_cnv", "MYC_rnaseq", "KRAS_mut"]
    doc = json.loads(js.read_text())
    assert list(doc["families"]) == ["Tumor Suppressors", "Oncogenes"]
    assert doc["families"]["Tumor Suppressors"] == ["TP53_rnaseq", "RB1_cnv"]
    assert doc["n_genes_found"] == {"Tumor Suppressors": 2, "Oncogenes": 2}
    assert doc["dropped"]["n_zero_variance"] == 1 and doc["dropped"]["n_all_missing"] == 1
    assert read_families_json(js) == doc["families"]
    assert not list(pq.parent.glob("*.part"))


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (pd.DataFrame({"case_id": ["a", "a"], "TP53_rnaseq": [1.0, 2.0], "MYC_cnv": [1, 2]}),
         r"duplicated case ids: \['a'\]"),
        (pd.DataFrame({"case_id": ["a", "b"], "TP53_rnaseq": ["x", "y"], "MYC_cnv": [1, 2]}),
         r"non-numeric gene columns: \['TP53_rnaseq'\]"),
        (pd.DataFrame({"case_id": ["a", "b"], "TP53_rnaseq": [1.0, 2.0]}), "'Oncogenes'"),
    ],
)  # fmt: skip
def test_build_omics_bags_errors(tmp_path, families_csv, table, match):
    with pytest.raises(ValueError, match=match):
        build_omics_bags(
            _omics_tsv(tmp_path, table), families_csv, tmp_path / "o.parquet", tmp_path / "f.json"
        )


def test_standardizer_fits_on_train_only_and_roundtrips():
    train = pd.DataFrame({"a": [1.0, 3.0], "b": [5.0, 5.0]}, index=["t1", "t2"])
    test = pd.DataFrame({"a": [5.0, np.nan], "b": [7.0, 5.0]}, index=["x1", "x2"])
    sc = Standardizer().fit(train)
    z = sc.transform(test)
    # a: mean 2, std 1 → (5 - 2) / 1 = 3; NaN → 0. b: std 0 → 1, so 7 - 5 = 2.
    np.testing.assert_allclose(z.to_numpy(), [[3.0, 2.0], [0.0, 0.0]])
    again = Standardizer.from_dict(json.loads(json.dumps(sc.to_dict())))
    pd.testing.assert_frame_equal(again.transform(test), z)
    with pytest.raises(KeyError, match="'b'"):
        sc.transform(test[["a"]])


def _table_with_gaps() -> pd.DataFrame:
    """Four cases, family columns; case 002 misses two cells, case 004 one."""
    return pd.DataFrame(
        {
            "case_id": ["001", "002", "003", "004"],
            "TP53_rnaseq": [0.1, np.nan, 0.3, 0.9],
            "RB1_cnv": [1.0, np.nan, -1.0, 0.0],
            "MYC_rnaseq": [0.5, 0.2, 0.7, np.nan],
            "KRAS_mut": [0, 1, 0, 1],
        }
    )


@pytest.mark.parametrize("cell", ["inf", "-inf"])
def test_omics_reader_refuses_inf_naming_the_columns_and_cases(tmp_path, families_csv, cell):
    table = _table_with_gaps().fillna(0.0).astype({"MYC_rnaseq": object})
    table.loc[2, "MYC_rnaseq"] = cell  # case 003
    pq, js = tmp_path / "o.parquet", tmp_path / "f.json"
    with pytest.raises(ValueError, match=r"infinite .*\['MYC_rnaseq'\] of case\(s\) \['003'\]"):
        build_omics_bags(_omics_tsv(tmp_path, table), families_csv, pq, js)
    assert not pq.exists()


def test_omics_impute_mean_keeps_the_gaps_and_counts_them_per_case_and_column(
    tmp_path, families_csv
):
    pq, js, miss = tmp_path / "o.parquet", tmp_path / "f.json", tmp_path / "missing.json"
    src = _omics_tsv(tmp_path, _table_with_gaps())
    build_omics_bags(src, families_csv, pq, js, impute="mean", out_missing=miss)
    got = pd.read_parquet(pq)
    assert list(got.index) == ["001", "002", "003", "004"]
    assert int(got.isna().sum().sum()) == 3  # imputed later, per training fold
    doc = json.loads(miss.read_text())
    assert doc["policy"] == "mean" and doc["n_cells"] == 3
    assert doc["by_case"] == {"002": 2, "004": 1}
    assert doc["by_column"] == {"TP53_rnaseq": 1, "RB1_cnv": 1, "MYC_rnaseq": 1}
    assert doc["dropped_cases"] == []


def test_omics_impute_drop_case_leaves_out_the_cases_with_a_gap(tmp_path, families_csv):
    pq, js, miss = tmp_path / "o.parquet", tmp_path / "f.json", tmp_path / "missing.json"
    src = _omics_tsv(tmp_path, _table_with_gaps())
    build_omics_bags(src, families_csv, pq, js, impute="drop_case", out_missing=miss)
    got = pd.read_parquet(pq)
    assert list(got.index) == ["001", "003"] and not got.isna().any().any()
    assert json.loads(miss.read_text())["dropped_cases"] == ["002", "004"]


def test_omics_impute_error_names_the_cases_and_columns(tmp_path, families_csv):
    pq, js = tmp_path / "o.parquet", tmp_path / "f.json"
    src = _omics_tsv(tmp_path, _table_with_gaps())
    with pytest.raises(ValueError, match=r"3 missing .*\['002', '004'\].*'TP53_rnaseq'.*error"):
        build_omics_bags(src, families_csv, pq, js, impute="error")
    assert not pq.exists()


def test_training_job_logs_the_imputed_cells_per_case_and_column(tmp_path, caplog):
    import logging

    from mmsurv.training.setup import _load_omics

    table = _table_with_gaps().set_index("case_id").astype(np.float32)
    table.to_parquet(tmp_path / "omics.parquet")
    fams = {"ts": ["TP53_rnaseq", "RB1_cnv"], "onc": ["MYC_rnaseq", "KRAS_mut"]}
    with caplog.at_level(logging.WARNING):
        blocks, _ = _load_omics(
            str(tmp_path / "omics.parquet"), fams, ["001", "002", "003"], ["001", "003"]
        )
    assert all(np.isfinite(b).all() for b in blocks)
    (msg,) = [r.getMessage() for r in caplog.records if "imputed" in r.getMessage()]
    # the job's cases only: 004's gap is not this job's
    assert "2 missing omics value(s) imputed with the training-fold mean" in msg
    assert "{'002': 2}" in msg and "{'TP53_rnaseq': 1, 'RB1_cnv': 1}" in msg
