"""Acquisition keeps age, sex, site (TSS) and stage in clinical.tsv, for every source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_byo import CASES, mcat_table, write_mcat  # tests/ is on sys.path (rootdir imports)

from mmsurv.acquire.byo import convert_mcat
from mmsurv.acquire.clinical import clinical_covariates, normalise_sex, tss_code
from mmsurv.acquire.survival import read_cbioportal_survival, read_tcga_cdr
from mmsurv.acquire.writers import write_clinical
from mmsurv.bags.data import read_clinical

FIX = Path(__file__).parent / "fixtures" / "tcga"
CBIO = FIX / "cbioportal"


def test_tss_code_and_sex_spellings() -> None:
    assert tss_code("TCGA-2F-A9KO") == "2F" and tss_code("TCGA-2F-A9KO-01Z-00-DX1") == "2F"
    assert tss_code("DEMO-BLCA-001") is None
    for raw, sex in [("FEMALE", "female"), ("Female", "female"), ("F", "female"), ("MALE", "male")]:
        assert normalise_sex(raw) == sex
    assert np.isnan(normalise_sex("[Not Available]")) and np.isnan(normalise_sex(None))


def test_tcga_cdr_keeps_age_sex_stage_and_site(tmp_path: Path) -> None:
    surv = read_tcga_cdr(FIX / "TCGA-CDR-SupplementalTableS1.tsv", cancer_type="BLCA")
    table = surv.table
    assert list(table.columns) == ["survival_months", "event", "age", "sex", "site", "stage"]
    assert table["age"].tolist() == [63.0] * 4 and set(table["sex"]) == {"male"}
    assert set(table["stage"]) == {"Stage III"} and set(table["site"]) == {"X1"}
    # through the writer and the training stage's reader, as named columns
    write_clinical(surv, tmp_path / "clinical.tsv")
    back = read_clinical(tmp_path / "clinical.tsv")
    assert {"age", "sex", "site", "stage"} <= set(back.columns)
    assert back.loc["TCGA-X1-A001", "sex"] == "male" and back.loc["TCGA-X1-A001", "age"] == 63


def test_cbioportal_keeps_age_sex_stage_and_site(tmp_path: Path) -> None:
    surv = read_cbioportal_survival(CBIO / "data_clinical_patient.txt")
    t = surv.table
    assert t.loc["TCGA-X1-A002", "sex"] == "female" and t.loc["TCGA-X1-A002", "age"] == 71
    assert t.loc["TCGA-X1-A001", "sex"] == "male" and set(t["site"]) == {"X1"}
    assert "stage" not in t.columns  # the fixture has no stage column: nothing is invented
    # a PanCancer Atlas patient file with AJCC_PATHOLOGIC_TUMOR_STAGE keeps it as stage
    lines = (CBIO / "data_clinical_patient.txt").read_text().splitlines()
    head = sum(line.startswith("#") for line in lines)
    rows = [line + ("\tAJCC_PATHOLOGIC_TUMOR_STAGE" if i == head else "\tSTAGE IIA")
            for i, line in enumerate(lines) if i >= head]  # fmt: skip
    rows[2] = rows[2].rsplit("\t", 1)[0] + "\t[Not Available]"
    path = tmp_path / "data_clinical_patient.txt"
    path.write_text("\n".join(rows) + "\n")
    staged = read_cbioportal_survival(path).table
    assert staged.loc["TCGA-X1-A001", "stage"] == "STAGE IIA"
    assert pd.isna(staged.loc["TCGA-X1-A002", "stage"])  # the missing marker stays missing


def test_byo_mcat_table_maps_is_female_to_sex_and_keeps_site_and_age(tmp_path: Path) -> None:
    src = mcat_table()
    res = convert_mcat(
        write_mcat(tmp_path, src),
        cohort="TCGA-BLCA",
        clinical_out=tmp_path / "clinical.tsv",
        omics_out=tmp_path / "omics.tsv",
    )
    clinical = read_clinical(tmp_path / "clinical.tsv")
    per_case = src.drop_duplicates("case_id").set_index("case_id")
    expected = per_case["is_female"].map({1: "female", 0: "male"})
    assert clinical["sex"].tolist() == expected.loc[CASES].tolist()
    assert clinical["age"].tolist() == per_case.loc[CASES, "age"].astype(float).tolist()
    assert set(clinical["site"]) == set(per_case["site"])
    named = ["survival_months", "event", "age", "sex", "site"]
    assert list(res.table.clinical.columns[:5]) == named


def test_byo_without_site_column_takes_it_from_the_barcode(tmp_path: Path) -> None:
    src = mcat_table().drop(columns=["site"])
    convert_mcat(
        write_mcat(tmp_path, src),
        cohort="TCGA-BLCA",
        clinical_out=tmp_path / "clinical.tsv",
        omics_out=tmp_path / "omics.tsv",
    )
    assert set(read_clinical(tmp_path / "clinical.tsv")["site"]) == {"Y1"}  # TCGA-Y1-B001


def test_covariates_left_out_when_the_source_lacks_them() -> None:
    table = pd.DataFrame({"x": [1, 2]})
    out = clinical_covariates(table, pd.Series(["A-1", "A-2"]), source="t.csv")
    assert out.columns.tolist() == []


def test_real_mcat_tables_give_age_sex_site() -> None:
    """The published MCAT BLCA table (../shared/data) carries age, is_female and site."""
    path = Path(__file__).parents[2] / "shared/data/tcga_genomics/tcga_blca_all_clean.csv.gz"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    head = pd.read_csv(path, nrows=40, low_memory=False)
    head = head.drop(columns=[c for c in head.columns if c.startswith("Unnamed")])
    out = clinical_covariates(head, head["case_id"], source=str(path))
    assert out.columns.tolist() == ["age", "sex", "site"]
    assert set(out["sex"].dropna()) <= {"female", "male"} and out["age"].between(18, 100).all()
    assert (out["site"] == head["case_id"].str[5:7]).all()  # MCAT's site is the TSS code
