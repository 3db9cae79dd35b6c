"""TCGA parsers (mmsurv.acquire) on fixtures in the real formats, omics and cohort harmonisation."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmsurv.acquire.barcodes import choose_samples, parse_sample_barcode
from mmsurv.acquire.cbioportal import (
    NONSILENT_CLASSES,
    read_cbioportal_case_list,
    read_cbioportal_matrix,
    read_maf,
)
from mmsurv.acquire.cohort import REPORT_FILES, prepare_cohort, select_for_pipeline
from mmsurv.acquire.gdc_omics import read_gdc_gene_cnv, read_gdc_star_counts
from mmsurv.acquire.harmonise import (
    gene_family_report,
    harmonise_cohort,
    harmonise_omics,
    paper_cases,
)
from mmsurv.acquire.survival import (
    DAYS_PER_MONTH,
    cancer_code,
    parse_os_status,
    read_cbioportal_survival,
    read_tcga_cdr,
)
from mmsurv.acquire.tcga_io import TCGAFormatError
from mmsurv.acquire.writers import write_clinical, write_omics

FIX = Path(__file__).parent / "fixtures" / "tcga"
CBIO = FIX / "cbioportal"
GDC = FIX / "gdc"
GENES = ["TP53", "PTEN", "RB1", "EGFR", "KRAS", "MYC", "ERBB2", "CDK4", "GATA3", "IL6"]
STAR = {
    "TCGA-X1-A001-01A-11R-A277-07": "2b1c7e2a-1111-4c1d-9e0a-000000000001",
    "TCGA-X1-A001-01B-21R-A277-07": "2b1c7e2a-1111-4c1d-9e0a-000000000002",
    "TCGA-X1-A002-01A-11R-A277-07": "2b1c7e2a-1111-4c1d-9e0a-000000000003",
    "TCGA-X1-A002-11A-11R-A277-07": "2b1c7e2a-1111-4c1d-9e0a-000000000004",
}
STAR_FILES = {s: GDC / f"{u}.rna_seq.augmented_star_gene_counts.tsv" for s, u in STAR.items()}
CNV_FILES = {
    f"TCGA-X1-A00{i}-01A-11D-A27A-01": GDC
    / f"TCGA-X1.5f0e9c1d-2222-4b7a-8c3e-00000000000{i}.ascat3.gene_level_copy_number.v36.tsv"
    for i in (1, 2)
}


def case(i: int) -> str:
    return f"TCGA-X1-A00{i}"


# --------------------------------------------------------------------------- barcodes
def test_parse_sample_barcode():
    assert parse_sample_barcode("TCGA-X1-A001-01") == ("TCGA-X1-A001", "01")
    assert parse_sample_barcode("TCGA-X1-A001-11A-01R-A277-07") == ("TCGA-X1-A001", "11")
    with pytest.raises(ValueError, match="not a TCGA sample barcode: 'TCGA-X1-A001'"):
        parse_sample_barcode("TCGA-X1-A001")


def test_choose_samples_prefers_type_order_then_smallest_barcode(caplog):
    ids = ["TCGA-X1-A001-01B", "TCGA-X1-A001-01A", "TCGA-X1-A001-11A", "TCGA-X1-A002-06A"]
    with caplog.at_level(logging.INFO, logger="mmsurv.acquire.barcodes"):
        assert choose_samples(ids, source="t") == {"TCGA-X1-A001-01A": "TCGA-X1-A001"}
    assert "case TCGA-X1-A001 has 2 samples" in caplog.text
    both = choose_samples(ids, sample_types=("06", "01"))
    assert both == {"TCGA-X1-A001-01A": "TCGA-X1-A001", "TCGA-X1-A002-06A": "TCGA-X1-A002"}
    with pytest.raises(ValueError, match="at least one"):
        choose_samples(ids, sample_types=())


# --------------------------------------------------------------------------- cBioPortal omics
def test_read_cbioportal_rsem():
    rna = read_cbioportal_matrix(CBIO / "data_mrna_seq_v2_rsem.txt")
    assert list(rna.index) == [case(i) for i in range(1, 6)]
    assert rna.index.name == "case_id"
    assert list(rna.columns) == GENES  # blank-symbol row dropped, repeated MYC kept once
    assert rna.at[case(1), "MYC"] == pytest.approx(4410.2)  # first MYC row
    assert rna.attrs["sample_of_case"][case(5)] == "TCGA-X1-A005-01"  # not the -06 metastasis
    assert rna.at[case(5), "CDK4"] == 850.0
    assert rna["IL6"].isna().all()
    assert rna.dtypes.eq(np.float64).all()


def test_read_cbioportal_cna():
    cna = read_cbioportal_matrix(CBIO / "data_cna.txt")
    assert list(cna.index) == [case(i) for i in range(1, 5)]
    assert math.isnan(cna.at[case(3), "ERBB2"])
    assert set(np.unique(cna.to_numpy()[~np.isnan(cna.to_numpy())])) <= {-2, -1, 0, 1, 2}


def test_cbioportal_matrix_errors(tmp_path):
    bad = tmp_path / "data_cna.txt"
    bad.write_text("Hugo_Symbol\tEntrez_Gene_Id\tsample_1\nTP53\t7157\t0\n")
    with pytest.raises(TCGAFormatError, match=r"data_cna.txt.*\['sample_1'\].*not TCGA"):
        read_cbioportal_matrix(bad)
    bad.write_text("Hugo_Symbol\tEntrez_Gene_Id\tTCGA-X1-A001-01\nTP53\t7157\thigh\n")
    with pytest.raises(TCGAFormatError, match=r"non-numeric value 'high' in column 'TCGA-X1"):
        read_cbioportal_matrix(bad)
    bad.write_text("Gene\tTCGA-X1-A001-01\nTP53\t0\n")
    with pytest.raises(TCGAFormatError, match=r"missing column\(s\) \['Hugo_Symbol'\]"):
        read_cbioportal_matrix(bad)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_cbioportal_matrix(tmp_path / "nope.txt")


def test_read_maf_counts_nonsilent_only():
    mut = read_maf(CBIO / "data_mutations.txt")
    assert list(mut.index) == [case(i) for i in range(1, 5)]
    assert mut.at[case(1), "TP53"] == 1.0  # missense; its 3'UTR row does not add anything
    assert mut.at[case(2), "KRAS"] == 1.0
    assert mut.at[case(3), "EGFR"] == 0.0  # silent only
    assert mut.at[case(4), "PTEN"] == 1.0 and mut.at[case(4), "ERBB2"] == 1.0
    assert int(mut.to_numpy().sum()) == 5
    assert "Silent" not in NONSILENT_CLASSES


def test_read_maf_with_profiled_case_list():
    profiled = read_cbioportal_case_list(CBIO / "case_lists" / "cases_sequenced.txt")
    assert profiled[-1] == "TCGA-X1-A005-01" and len(profiled) == 5
    mut = read_maf(CBIO / "data_mutations.txt", profiled_samples=profiled)
    assert case(5) in mut.index and mut.loc[case(5)].sum() == 0.0


# --------------------------------------------------------------------------- GDC omics
def test_read_gdc_star_counts(caplog):
    with caplog.at_level(logging.WARNING, logger="mmsurv.acquire.barcodes"):
        rna = read_gdc_star_counts(STAR_FILES)
    assert list(rna.index) == [case(1), case(2)]  # the 11A normal is ignored
    assert "case TCGA-X1-A001 has 2 samples" in caplog.text
    assert rna.attrs["sample_of_case"][case(1)] == "TCGA-X1-A001-01A-11R-A277-07"
    assert list(rna.columns) == GENES  # N_* rows and the RB1 _PAR_Y twin dropped
    assert rna.at[case(1), "TP53"] == pytest.approx(38.2)  # 01A, not 01B (x1.7)
    assert rna.at[case(2), "RB1"] == pytest.approx(9.4 * 0.6, abs=1e-4)
    counts = read_gdc_star_counts(STAR_FILES, value="unstranded")
    assert counts.at[case(1), "TP53"] == int(38.2 * 55)
    with pytest.raises(TCGAFormatError, match=r"augmented_star_gene_counts.tsv: missing .*'tpm'"):
        read_gdc_star_counts(STAR_FILES, value="tpm")


def test_read_gdc_gene_cnv():
    cnv = read_gdc_gene_cnv(CNV_FILES)
    assert list(cnv.index) == [case(1), case(2)]
    assert cnv.at[case(1), "ERBB2"] == 6.0 and cnv.at[case(2), "GATA3"] == 1.0
    assert math.isnan(cnv.at[case(1), "IL6"])
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        read_gdc_gene_cnv({"TCGA-X1-A003-01A": GDC / "missing.tsv"})


# --------------------------------------------------------------------------- survival
def test_read_tcga_cdr_days_to_months_and_exclusions():
    assert DAYS_PER_MONTH == 30.44
    surv = read_tcga_cdr(FIX / "TCGA-CDR-SupplementalTableS1.tsv", cancer_type="TCGA-BLCA")
    table = surv.table
    assert list(table.index) == [case(1), case(2), case(3), case(5)]
    assert table.at[case(1), "survival_months"] == pytest.approx(437 / 30.44)
    assert table["event"].dtype == bool
    assert table["event"].tolist() == [True, False, True, False]
    assert surv.excluded.to_dict("records") == [
        {"case_id": case(4), "reason": "missing survival time"},
        {"case_id": case(6), "reason": "negative survival time"},
    ]
    everyone = read_tcga_cdr(FIX / "TCGA-CDR-SupplementalTableS1.tsv")
    assert "TCGA-X2-B001" in everyone.table.index
    with pytest.raises(TCGAFormatError, match="no row with type == 'KIRC'"):
        read_tcga_cdr(FIX / "TCGA-CDR-SupplementalTableS1.tsv", cancer_type="KIRC")


def test_read_tcga_cdr_csv_export(tmp_path):
    src = pd.read_csv(FIX / "TCGA-CDR-SupplementalTableS1.tsv", sep="\t", dtype=str)
    csv = tmp_path / "TCGA-CDR-SupplementalTableS1.csv"
    src.to_csv(csv, index=False)
    surv = read_tcga_cdr(csv, cancer_type="BLCA")
    assert len(surv.table) == 4 and len(surv.excluded) == 2


def test_read_tcga_cdr_xlsx_sheet(tmp_path):
    """The published TCGA-CDR is an .xlsx whose data sit on the sheet `TCGA-CDR`."""
    src = pd.read_csv(FIX / "TCGA-CDR-SupplementalTableS1.tsv", sep="\t", dtype=str)
    xlsx = tmp_path / "TCGA-CDR-SupplementalTableS1.xlsx"
    with pd.ExcelWriter(xlsx, engine="openpyxl") as writer:
        pd.DataFrame({"note": ["readme"]}).to_excel(writer, sheet_name="ExtraEndpoints")
        src.to_excel(writer, sheet_name="TCGA-CDR", index=False)
    from_xlsx = read_tcga_cdr(xlsx, cancer_type="BLCA")
    from_tsv = read_tcga_cdr(FIX / "TCGA-CDR-SupplementalTableS1.tsv", cancer_type="BLCA")
    pd.testing.assert_frame_equal(from_xlsx.table, from_tsv.table)
    assert from_xlsx.excluded.equals(from_tsv.excluded)


def test_read_cbioportal_survival():
    surv = read_cbioportal_survival(CBIO / "data_clinical_patient.txt")
    assert list(surv.table.index) == [case(1), case(2), case(3), case(5), case(6)]
    assert surv.table.at[case(6), "survival_months"] == 0.0  # zero is a valid time
    assert surv.table["event"].tolist() == [True, False, True, False, True]
    assert surv.excluded.to_dict("records") == [
        {"case_id": case(4), "reason": "missing survival time"}
    ]


@pytest.mark.parametrize(
    "value, expected",
    [("1:DECEASED", True), ("0:LIVING", False), ("DECEASED", True), ("[Unknown]", None)],
)
def test_parse_os_status(value, expected):
    assert parse_os_status(value) is expected


def test_survival_rejects_duplicated_cases(tmp_path):
    path = tmp_path / "cdr.tsv"
    path.write_text(
        "bcr_patient_barcode\ttype\tOS\tOS.time\nTCGA-X1-A001\tBLCA\t1\t10\n"
        "TCGA-X1-A001\tBLCA\t0\t20\n"
    )
    with pytest.raises(TCGAFormatError, match=r"cdr.tsv: case\(s\) listed more than once"):
        read_tcga_cdr(path)


# --------------------------------------------------------------------------- harmonisation
@pytest.fixture(scope="module")
def omics_result():
    rna = read_cbioportal_matrix(CBIO / "data_mrna_seq_v2_rsem.txt")
    cnv = read_cbioportal_matrix(CBIO / "data_cna.txt")
    mut = read_maf(CBIO / "data_mutations.txt")
    return harmonise_omics(rna, cnv, mut, genes=[*GENES, "NOTAGENE"])


def test_harmonise_omics_counts_and_transforms(omics_result):
    table, report, dropped, dropped_cases = omics_result
    assert list(table.index) == [case(i) for i in range(1, 5)]
    assert dropped_cases.to_dict("records") == [{"case_id": case(5), "reason": "no cnv/mut"}]
    rep = report.set_index("modality")
    assert rep.loc["rnaseq"].to_dict() == {
        "transform": "log2p1",
        "n_requested": 11,
        "n_not_in_source": 1,
        "n_all_missing": 1,  # IL6
        "n_zero_variance": 1,  # CDK4 (same value in every primary tumour)
        "n_kept": 8,
    }
    assert rep.loc["cnv", "n_zero_variance"] == 1  # RB1
    assert rep.loc["cnv", "n_kept"] == 9
    assert rep.loc["mut", "n_not_in_source"] == 6  # never mutated in the MAF
    assert rep.loc["mut", "n_zero_variance"] == 1  # EGFR: silent only
    assert rep.loc["mut", "n_kept"] == 4
    assert table.shape[1] == 8 + 9 + 4
    reasons = dropped.set_index("column")["reason"]
    assert reasons["CDK4_rnaseq"] == "zero variance"
    assert reasons["IL6_rnaseq"] == "all missing"
    assert reasons["NOTAGENE_cnv"] == "not in source"
    assert table.at[case(1), "TP53_rnaseq"] == pytest.approx(np.log2(1834.2213 + 1))
    assert table.at[case(4), "PTEN_rnaseq"] == 0.0  # negative RSEM clipped before log2(x+1)
    assert table.at[case(3), "ERBB2_cnv"] != table.at[case(3), "ERBB2_cnv"]  # NaN kept
    assert table.at[case(2), "KRAS_mut"] == 1.0


def test_harmonise_omics_transform_config():
    rna = pd.DataFrame({"A": [1.0, 3.0], "B": [0.0, 1.0]}, index=["c1", "c2"])
    cnv = pd.DataFrame({"A": [0.0, 1.0]}, index=["c1", "c2"])
    raw = harmonise_omics(rna, cnv, genes=None, transforms={"rnaseq": "none"}).table
    assert raw["A_rnaseq"].tolist() == [1.0, 3.0]
    assert list(raw.columns) == ["A_rnaseq", "B_rnaseq", "A_cnv"]
    doubled = harmonise_omics(rna, cnv, transforms={"cnv": lambda f: 2 * f}).table
    assert doubled["A_cnv"].tolist() == [0.0, 2.0]
    assert doubled["A_rnaseq"].tolist() == [1.0, 2.0]  # default log2(x+1)
    with pytest.raises(ValueError, match=r"unknown transform 'log' for modality 'rnaseq'"):
        harmonise_omics(rna, cnv, transforms={"rnaseq": "log"})
    with pytest.raises(ValueError, match="unknown modalities"):
        harmonise_omics(rna, cnv, transforms={"rna": "none"})
    with pytest.raises(ValueError, match="no case is present in every modality"):
        harmonise_omics(rna, cnv.rename(index={"c1": "x", "c2": "y"}))


def test_gene_family_report(omics_result):
    families = {"ts": ["TP53", "PTEN", "RB1", "TP53"], "cyto": ["IL6", "IL1B"]}
    rep = gene_family_report(omics_result.table, families, cohort="TCGA-BLCA")
    got = rep.set_index(["family", "modality"])["n_found"].to_dict()
    assert got == {
        ("ts", "rnaseq"): 3,
        ("ts", "cnv"): 2,  # RB1 has zero variance in CNA
        ("ts", "mut"): 2,  # TP53, PTEN
        ("cyto", "rnaseq"): 0,
        ("cyto", "cnv"): 1,
        ("cyto", "mut"): 0,
    }
    assert rep["n_family_genes"].tolist() == [3, 3, 3, 2, 2, 2]
    assert set(rep["cohort"]) == {"TCGA-BLCA"}


def _harmonise(omics_result, policy):
    slides = pd.DataFrame(
        {
            "cohort": ["TCGA-BLCA"] * 4 + ["TCGA-LUAD"],
            "case_id": [case(1), case(1), case(2), case(6), "TCGA-X2-B001"],
            "slide_id": ["s1a", "s1b", "s2", "s6", "luad1"],
            "path": ["p"] * 5,
        }
    )
    surv = read_cbioportal_survival(CBIO / "data_clinical_patient.txt")
    res = harmonise_cohort(
        slides, omics_result.table, surv, cohort="TCGA-BLCA", missing_policy=policy
    )
    return slides, surv, res


def test_harmonise_cohort_drop(omics_result):
    _, _, (cases, summary) = _harmonise(omics_result, "drop")
    assert cases.loc[case(1), "n_slides"] == 2
    assert cases["category"].to_dict() == {
        case(1): "all_modalities",
        case(2): "all_modalities",
        case(3): "omics_only",
        case(4): "no_survival",
        case(5): "survival_only",
        case(6): "slide_only",
    }
    assert cases.loc[case(4), "reason"] == "no survival (missing survival time)"
    assert cases.loc[case(3), "reason"] == "missing slides"
    assert cases.loc[case(6), "reason"] == "missing omics"
    assert cases.loc[case(5), "reason"] == "no slides and no omics"
    row = summary.iloc[0]
    assert (row["n_all_modalities"], row["n_slide_only"], row["n_omics_only"]) == (2, 1, 1)
    assert (row["n_kept"], row["n_dropped"], row["n_multimodal"]) == (2, 4, 2)
    assert row["paper_cases"] == 371 and row["diff_vs_paper"] == 2 - 371


def test_harmonise_cohort_keep_unimodal_and_selection(omics_result):
    slides, surv, res = _harmonise(omics_result, "keep_unimodal")
    cases, summary = res
    assert cases.loc[case(6), ["kept", "use_pathology", "use_genomics"]].tolist() == [
        True,
        True,
        False,
    ]
    assert cases.loc[case(3), ["use_pathology", "use_genomics"]].tolist() == [False, True]
    assert summary.iloc[0][["n_kept", "n_pathology", "n_genomics"]].tolist() == [4, 3, 3]
    sheet, clinical, omics = select_for_pipeline(
        res, slides=slides, omics=omics_result.table, survival=surv
    )
    assert sorted(sheet["slide_id"]) == ["s1a", "s1b", "s2", "s6"]
    assert sorted(clinical.index) == [case(1), case(2), case(3), case(6)]
    assert sorted(omics.index) == [case(1), case(2), case(3)]
    with pytest.raises(ValueError, match="missing_policy must be"):
        harmonise_cohort(slides, omics, surv, cohort="TCGA-BLCA", missing_policy="keep")


def test_paper_cases_from_spec():
    assert [paper_cases(c) for c in ("TCGA-BLCA", "tcga_luad", "UCEC", "DEMO-BLCA")] == [
        371,
        450,
        475,
        None,
    ]
    assert cancer_code("tcga-ucec") == "UCEC"


# --------------------------------------------------------------------------- pipeline inputs
def test_written_tables_round_trip_through_pipeline_readers(tmp_path, omics_result):
    from mmsurv.bags.data import read_clinical
    from mmsurv.bags.omics import build_omics_bags, read_omics_table

    surv = read_cbioportal_survival(CBIO / "data_clinical_patient.txt")
    write_clinical(surv, tmp_path / "clinical.tsv")
    clinical = read_clinical(tmp_path / "clinical.tsv")
    pd.testing.assert_frame_equal(clinical[surv.table.columns], surv.table, check_names=False)
    header = (tmp_path / "clinical.tsv").read_text().splitlines()[:2]
    assert header == [
        "case_id\tsurvival_months\tevent\tage\tsex\tsite",
        "TCGA-X1-A001\t14.36\t1\t63.0\tmale\tX1",
    ]

    write_omics(omics_result.table, tmp_path / "omics.tsv")
    back = read_omics_table(tmp_path / "omics.tsv")
    pd.testing.assert_frame_equal(back, omics_result.table, check_names=False)

    families = tmp_path / "families.csv"
    shutil.copy(Path(__file__).parents[1] / "resources" / "gene_families.csv", families)
    build_omics_bags(
        tmp_path / "omics.tsv", families, tmp_path / "omics.parquet", tmp_path / "fam.json"
    )
    assert len(pd.read_parquet(tmp_path / "omics.parquet")) == 4


def test_write_omics_rejects_unsuffixed_columns(tmp_path):
    with pytest.raises(ValueError, match=r"columns \['TP53'\] lack a _rnaseq/_cnv/_mut suffix"):
        write_omics(pd.DataFrame({"TP53": [1.0]}, index=["c1"]), tmp_path / "o.tsv")


def test_prepare_cohort_writes_inputs_and_reports(tmp_path):
    from mmsurv.bags.data import read_clinical
    from mmsurv.bags.omics import read_omics_table

    slides = pd.DataFrame(
        {
            "cohort": ["TCGA-BLCA"] * 3,
            "case_id": [case(1), case(2), case(6)],
            "slide_id": ["s1", "s2", "s6"],
            "path": ["p1", "p2", "p6"],
        }
    )
    families = {"ts": ["TP53", "PTEN", "RB1"], "onc": ["KRAS", "MYC", "EGFR"]}
    res = prepare_cohort(
        cohort="TCGA-BLCA",
        slides=slides,
        rna=read_cbioportal_matrix(CBIO / "data_mrna_seq_v2_rsem.txt"),
        cnv=read_cbioportal_matrix(CBIO / "data_cna.txt"),
        mut=read_maf(CBIO / "data_mutations.txt"),
        survival=read_tcga_cdr(FIX / "TCGA-CDR-SupplementalTableS1.tsv", cancer_type="BLCA"),
        families=families,
        clinical_out=tmp_path / "clinical.tsv",
        omics_out=tmp_path / "omics.tsv",
        report_dir=tmp_path / "report",
        slides_out=tmp_path / "slides.tsv",
    )
    assert res.summary.iloc[0]["n_multimodal"] == 2
    assert list(read_clinical(tmp_path / "clinical.tsv").index) == [case(1), case(2)]
    omics = read_omics_table(tmp_path / "omics.tsv")
    assert list(omics.index) == [case(1), case(2)]
    assert not any(c.startswith(("GATA3", "IL6")) for c in omics.columns)  # not in a family
    for name in REPORT_FILES.values():
        assert (tmp_path / "report" / name).is_file()
    excluded = pd.read_csv(tmp_path / "report" / REPORT_FILES["survival_excluded"], sep="\t")
    assert excluded["case_id"].tolist() == [case(4), case(6)]
    assert pd.read_csv(tmp_path / "slides.tsv", sep="\t")["slide_id"].tolist() == ["s1", "s2"]
