"""mmsurv.acquire.byo and .mcat: MCAT-style tables, signatures and splits made here, read back."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmsurv.acquire.byo import convert_mcat, find_slides, write_slide_sheet
from mmsurv.acquire.mcat import (
    BYOError,
    mcat_split_paths,
    read_mcat_splits,
    read_mcat_table,
    slide_stem,
)

COHORT = "TCGA-BLCA"
CASES = [f"TCGA-Y1-B00{i}" for i in range(1, 7)]
GENES = ["TP53", "PTEN", "KRAS", "MYC", "EGFR", "IL6"]
FOLDS = [CASES[0:2], CASES[2:4], CASES[4:6]]


def mcat_table(seed: int = 0) -> pd.DataFrame:
    """An MCAT-style table: one row per slide, the last case has two slides."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, case in enumerate(CASES):
        per_case = {
            "case_id": case,
            "site": "Y1",
            "is_female": i % 2,
            "oncotree_code": "BLCA",
            "age": 50 + i,
            "survival_months": round(float(rng.uniform(1, 90)), 2),
            "censorship": int(i % 3 == 0),
            "train": 1,
        }
        for g in GENES:
            per_case[f"{g}_rnaseq"] = float(rng.normal())
            per_case[f"{g}_cnv"] = float(rng.integers(-2, 3))
        per_case["TP53_mut"] = float(i % 2)
        slides = [f"{case}-01Z-00-DX1.{i:08X}-AAAA.svs"]
        if i == len(CASES) - 1:
            slides.append(f"{case}-01Z-00-DX2.{i:08X}-BBBB.svs")
        rows += [{**per_case, "slide_id": s} for s in slides]
    table = pd.DataFrame(rows)
    first = ["case_id", "slide_id"]
    return table[first + [c for c in table.columns if c not in first]]


def write_mcat(tmp_path: Path, table: pd.DataFrame | None = None) -> Path:
    """Write the table as MCAT does (pandas index as the first, unnamed column)."""
    path = tmp_path / "tcga_blca_all_clean.csv"
    (mcat_table() if table is None else table).to_csv(path)
    return path


def write_splits(tmp_path: Path, folds: list[list[str]], trains: list[list[str]] | None = None):
    """MCAT split CSVs: `train`/`val` columns of different lengths, NaN padded, index column."""
    paths = []
    for k, val in enumerate(folds):
        train = trains[k] if trains else [c for j, f in enumerate(folds) if j != k for c in f]
        frame = pd.DataFrame({"train": pd.Series(train), "val": pd.Series(val)})
        path = tmp_path / f"splits_{k}.csv"
        frame.to_csv(path)
        paths.append(path)
    return paths


@pytest.fixture
def signatures(tmp_path: Path) -> Path:
    path = tmp_path / "signatures.csv"
    path.write_text(
        "Tumor Suppressor Genes,Oncogenes,Cytokines and Growth Factors\n"
        "TP53,KRAS,IL6\nPTEN,MYC,\n,EGFR,\n"
    )
    return path


def test_slide_stem_strips_a_suffix_not_characters():
    assert slide_stem("TCGA-Y1-B001-01Z-00-DX1.ABC.svs") == "TCGA-Y1-B001-01Z-00-DX1.ABC"
    assert slide_stem("slides") == "slides"  # MCAT's rstrip('.svs') would give 'slide'
    assert slide_stem("x.TIFF") == "x"


def test_convert_round_trip_through_pipeline_readers(tmp_path, signatures):
    from mmsurv.bags.data import read_clinical, read_splits
    from mmsurv.bags.omics import build_omics_bags, read_omics_table
    from mmsurv.genes import load_gene_families
    from mmsurv.io import read_slide_sheet

    src = mcat_table()
    table_csv = write_mcat(tmp_path, src)
    slide_dir = tmp_path / "slides"
    slide_dir.mkdir()
    stems = [slide_stem(s) for s in src["slide_id"]]
    for stem in stems[:-1]:  # the last slide is absent
        (slide_dir / f"{stem}.svs").write_bytes(b"")
    out = tmp_path / "out"
    res = convert_mcat(
        table_csv,
        cohort=COHORT,
        clinical_out=out / "clinical.tsv",
        omics_out=out / "omics.tsv",
        slide_dir=slide_dir,
        slides_out=out / "slides.tsv",
        signatures_csv=signatures,
        families_out=out / "gene_families.csv",
        split_csvs=write_splits(tmp_path, FOLDS),
        splits_out=out / "splits.tsv",
    )
    assert res.missing_slides == [stems[-1]]

    clinical = read_clinical(out / "clinical.tsv")
    per_case = src.drop_duplicates("case_id").set_index("case_id")
    assert list(clinical.index) == CASES
    assert clinical["event"].tolist() == (per_case["censorship"] == 0).tolist()
    np.testing.assert_allclose(clinical["survival_months"], per_case["survival_months"])
    assert {"age", "is_female", "oncotree_code"} <= set(clinical.columns)
    assert "censorship" not in clinical.columns  # converted to event at I/O

    omics = read_omics_table(out / "omics.tsv")
    gene_cols = [c for c in src.columns if c.endswith(("_rnaseq", "_cnv", "_mut"))]
    assert list(omics.columns) == gene_cols
    np.testing.assert_allclose(omics.to_numpy(), per_case[gene_cols].to_numpy())

    families = load_gene_families(out / "gene_families.csv")
    assert families["Oncogenes"] == ["KRAS", "MYC", "EGFR"]
    assert res.family_report.query("modality == 'mut'")["n_found"].tolist() == [1, 0, 0]

    sheet = read_slide_sheet(out / "slides.tsv", [COHORT])
    assert len(sheet) == len(stems) - 1
    assert set(sheet["case_id"]) == set(CASES)  # the two-slide case keeps its found slide
    assert all(Path(p).is_file() for p in sheet["path"])

    splits = read_splits(out / "splits.tsv")
    assert dict(zip(splits["case_id"], splits["fold"], strict=True)) == {
        c: k for k, f in enumerate(FOLDS) for c in f
    }

    build_omics_bags(
        out / "omics.tsv", out / "gene_families.csv", out / "omics.parquet", out / "fam.json"
    )
    assert len(pd.read_parquet(out / "omics.parquet")) == len(CASES)


def test_genomics_only_without_slides(tmp_path):
    res = convert_mcat(
        write_mcat(tmp_path),
        cohort=COHORT,
        clinical_out=tmp_path / "clinical.tsv",
        omics_out=tmp_path / "omics.tsv",
        slides_out=tmp_path / "slides.tsv",
    )
    assert res.sheet.empty and res.missing_slides == []
    assert (tmp_path / "slides.tsv").read_text() == "cohort\tcase_id\tslide_id\tpath\n"
    assert (tmp_path / "omics.tsv").is_file() and res.splits is None


def test_genomics_only_table_without_slide_ids(tmp_path):
    table = mcat_table().drop(columns="slide_id").drop_duplicates("case_id")
    res = read_mcat_table(write_mcat(tmp_path, table))
    assert res.slides.empty and len(res.clinical) == len(CASES)


def test_find_slides_lists_every_missing_file(tmp_path):
    slides = pd.DataFrame({"case_id": ["a", "b"], "slide_id": ["s1", "s2"]})
    (tmp_path / "s2.tiff").write_bytes(b"")
    sheet, missing = find_slides(slides, tmp_path, cohort="C")
    assert missing == ["s1"] and sheet["path"].tolist() == [str(tmp_path / "s2.tiff")]
    with pytest.raises(FileNotFoundError, match="slide directory not found"):
        find_slides(slides, tmp_path / "nope", cohort="C")


def test_write_slide_sheet_rejects_a_slide_in_two_cohorts(tmp_path):
    one = pd.DataFrame({"cohort": ["A"], "case_id": ["c"], "slide_id": ["s"], "path": ["p"]})
    two = one.assign(cohort="B")
    with pytest.raises(BYOError, match=r"slide_id\(s\) in more than one cohort: \['s'\]"):
        write_slide_sheet([one, two], tmp_path / "slides.tsv")


# --------------------------------------------------------------------------- table errors
def test_table_errors_name_the_case_and_column(tmp_path):
    table = mcat_table()
    bad = table.copy()
    bad.loc[bad.index[-1], "survival_months"] = 1234.0  # second slide of the last case
    with pytest.raises(BYOError, match=rf"disagree on \['survival_months'\].*{CASES[-1]}"):
        read_mcat_table(write_mcat(tmp_path, bad))
    bad = table.copy()
    bad.loc[0, "censorship"] = 2
    with pytest.raises(BYOError, match=rf"censorship must be 0 or 1.*{CASES[0]}"):
        read_mcat_table(write_mcat(tmp_path, bad))
    bad = table.copy()
    bad.loc[1, "survival_months"] = -1.0
    with pytest.raises(BYOError, match=rf"negative survival_months for cases \['{CASES[1]}'\]"):
        read_mcat_table(write_mcat(tmp_path, bad))
    bad = table.astype({"survival_months": object})
    bad.loc[bad["case_id"] == CASES[1], "survival_months"] = "12 months"
    with pytest.raises(BYOError, match=rf"not a number for cases \['{CASES[1]}'\]"):
        read_mcat_table(write_mcat(tmp_path, bad))
    bad = table.astype({"KRAS_cnv": object})
    bad.loc[0, "KRAS_cnv"] = "amp"
    with pytest.raises(BYOError, match=r"non-numeric gene column\(s\) \['KRAS_cnv'\]"):
        read_mcat_table(write_mcat(tmp_path, bad))
    with pytest.raises(BYOError, match=r"missing column\(s\) \['censorship'\]"):
        read_mcat_table(write_mcat(tmp_path, table.drop(columns="censorship")))


def test_case_id_derived_from_tcga_slide_ids(tmp_path):
    res = read_mcat_table(write_mcat(tmp_path, mcat_table().drop(columns="case_id")))
    assert list(res.clinical.index) == CASES


# --------------------------------------------------------------------------- split errors
def test_split_padding_and_paths(tmp_path):
    paths = write_splits(tmp_path, FOLDS)
    assert mcat_split_paths(tmp_path, 3) == paths
    assert pd.read_csv(paths[0])["val"].isna().sum() == 2  # padded to the train length
    with pytest.raises(FileNotFoundError, match="splits_3.csv"):
        mcat_split_paths(tmp_path, 4)


def test_case_in_train_and_val_of_a_split(tmp_path):
    trains = [FOLDS[1] + FOLDS[2], FOLDS[0] + FOLDS[2] + [FOLDS[1][0]], FOLDS[0] + FOLDS[1]]
    paths = write_splits(tmp_path, FOLDS, trains)
    with pytest.raises(
        BYOError, match=rf"\['{FOLDS[1][0]}'\] are in both train and val of split 1"
    ):
        read_mcat_splits(paths, cases=CASES)


def test_split_cases_missing_from_table(tmp_path):
    folds = [FOLDS[0] + ["TCGA-ZZ-0001"], FOLDS[1], FOLDS[2] + ["TCGA-ZZ-0002"]]
    with pytest.raises(BYOError, match=r"2 case\(s\).*not in the table: \['TCGA-ZZ-0001', 'TCGA"):
        read_mcat_splits(write_splits(tmp_path, folds), cases=CASES)


def test_case_held_out_twice(tmp_path):
    folds = [FOLDS[0], FOLDS[1] + [FOLDS[0][0]], FOLDS[2]]
    trains = [FOLDS[1] + FOLDS[2], FOLDS[0][1:] + FOLDS[2], FOLDS[0] + FOLDS[1]]
    with pytest.raises(BYOError, match=rf"{FOLDS[0][0]} is in val of split 0 and of split 1"):
        read_mcat_splits(write_splits(tmp_path, folds, trains), cases=CASES)


def test_train_must_be_the_other_folds(tmp_path):
    trains = [FOLDS[1] + FOLDS[2], FOLDS[0] + FOLDS[2][:1], FOLDS[0] + FOLDS[1]]
    with pytest.raises(BYOError, match=rf"\['{FOLDS[2][1]}'\].*missing from train of split 1"):
        read_mcat_splits(write_splits(tmp_path, FOLDS, trains), cases=CASES)
    trains = [FOLDS[1] + FOLDS[2] + ["TCGA-ZZ-9"], FOLDS[0] + FOLDS[2], FOLDS[0] + FOLDS[1]]
    with pytest.raises(BYOError, match=r"\['TCGA-ZZ-9'\] are in train of split 0 but never in val"):
        read_mcat_splits(write_splits(tmp_path, FOLDS, trains))


def test_split_csv_without_val_column(tmp_path):
    path = tmp_path / "splits_0.csv"
    pd.DataFrame({"train": CASES}).to_csv(path)
    with pytest.raises(BYOError, match=r"splits_0.csv: missing column\(s\) \['val'\]"):
        read_mcat_splits([path])


@pytest.fixture
def restore_logging(monkeypatch):
    """`main --log` redirects stderr and the root logger; put both back after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    yield
    for h in root.handlers:
        if h not in handlers:
            h.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_command_line(tmp_path, signatures, restore_logging):
    from mmsurv.acquire.byo import main
    from mmsurv.bags.data import read_splits

    write_splits(tmp_path, FOLDS)
    rc = main(
        [
            "convert",
            "--cohort",
            COHORT,
            "--table",
            str(write_mcat(tmp_path)),
            "--clinical-out",
            str(tmp_path / "o" / "clinical.tsv"),
            "--omics-out",
            str(tmp_path / "o" / "omics.tsv"),
            "--signatures",
            str(signatures),
            "--families-out",
            str(tmp_path / "o" / "families.csv"),
            "--splits-dir",
            str(tmp_path),
            "--n-folds",
            "3",
            "--splits-out",
            str(tmp_path / "o" / "splits.tsv"),
            "--log",
            str(tmp_path / "o" / "byo.log"),
        ]
    )
    assert rc == 0
    assert len(read_splits(tmp_path / "o" / "splits.tsv")) == len(CASES)
    assert "6 cases" in (tmp_path / "o" / "byo.log").read_text()


# --------------------------------------------------------------------------- workflow helpers
def _cohort_inputs(tmp_path: Path, n: int = 12) -> tuple[Path, Path, list[str]]:
    """A clinical TSV and omics parquet of n cases, as the workflow writes them."""
    cases = [f"c{i:02d}" for i in range(n)]
    rng = np.random.default_rng(3)
    pd.DataFrame(
        {"case_id": cases, "survival_months": rng.uniform(1, 90, n), "event": np.arange(n) % 2}
    ).to_csv(tmp_path / "clinical.tsv", sep="\t", index=False)
    omics = pd.DataFrame({"TP53_rnaseq": rng.normal(size=n)}, index=pd.Index(cases))
    omics.index.name = "case_id"
    omics.to_parquet(tmp_path / "omics.parquet")
    return tmp_path / "clinical.tsv", tmp_path / "omics.parquet", cases


def _splits(tmp_path: Path, *, slide_cases, user_split_csvs=None, require_slides=True):
    from mmsurv.bags.stage import make_cohort_splits

    clinical, omics, _ = _cohort_inputs(tmp_path)
    return make_cohort_splits(
        clinical_tsv=clinical,
        omics_parquet=omics,
        slide_cases=slide_cases,
        out_tsv=tmp_path / "splits.tsv",
        n_folds=3,
        seed=0,
        require_slides=require_slides,
        user_split_csvs=user_split_csvs,
    )


def test_made_folds_keep_cases_without_slides_when_no_model_needs_them(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    splits = _splits(tmp_path, slide_cases=[], require_slides=False)
    assert len(splits) == 12 and sorted(splits["fold"].unique()) == [0, 1, 2]
    assert "modalities required: survival, omics (no configured model uses pathology" in caplog.text
    with pytest.raises(ValueError, match="only 0 case.*have survival, omics, slides"):
        _splits(tmp_path, slide_cases=[], require_slides=True)


def test_user_folds_are_kept_and_cases_without_slides_named(tmp_path):
    cases = [f"c{i:02d}" for i in range(12)]
    folds = [cases[0:4], cases[4:8], cases[8:12]]
    csvs = write_splits(tmp_path, folds)
    splits = _splits(tmp_path, slide_cases=[], user_split_csvs=csvs, require_slides=False)
    assert dict(zip(splits["case_id"], splits["fold"], strict=True)) == {
        c: k for k, f in enumerate(folds) for c in f
    }
    with pytest.raises(BYOError, match=r"no slides: \['c00', 'c05'\]"):
        _splits(tmp_path, slide_cases=sorted(set(cases) - {"c00", "c05"}), user_split_csvs=csvs)
    with pytest.raises(BYOError, match=r"2 split CSV\(s\) given for splits.n_folds = 3"):
        _splits(tmp_path, slide_cases=cases, user_split_csvs=csvs[:2])


def test_an_extra_split_csv_means_n_folds_is_wrong(tmp_path):
    paths = write_splits(tmp_path, FOLDS)
    with pytest.raises(BYOError, match=r"holds splits_2.csv but only 2 split CSV\(s\) are read"):
        mcat_split_paths(tmp_path, 2)
    assert mcat_split_paths(tmp_path, 3) == paths


def test_slide_sheet_optional_when_no_model_uses_pathology(tmp_path):
    from mmsurv.io import SheetError, read_slide_sheet

    absent, empty, header = tmp_path / "nope.tsv", tmp_path / "empty.tsv", tmp_path / "h.tsv"
    empty.write_text("")
    header.write_text("cohort\tcase_id\tslide_id\tpath\nOTHER\tc1\ts1\tx.svs\n")
    for path in (absent, empty, header):
        assert read_slide_sheet(path, [COHORT], require_slides=False).empty
    with pytest.raises(SheetError, match=rf"slides of cohort\(s\) \['{COHORT}'\]"):
        read_slide_sheet(absent, [COHORT])
    with pytest.raises(SheetError, match="empty file"):
        read_slide_sheet(empty, [COHORT])
    with pytest.raises(SheetError, match=rf"no slide for configured cohort\(s\) \['{COHORT}'\]"):
        read_slide_sheet(header, [COHORT])


def test_byo_sheet_names_a_cohort_without_slides(tmp_path, restore_logging):
    from mmsurv.acquire.byo import main, write_byo_sheet

    src = mcat_table()
    table_csv = write_mcat(tmp_path, src)
    slide_dir = tmp_path / "slides" / COHORT
    slide_dir.mkdir(parents=True)
    with pytest.raises(BYOError, match=rf"no slide file found for cohort\(s\) \['{COHORT}'\]"):
        write_byo_sheet({COHORT: table_csv}, str(tmp_path / "slides/{cohort}"), tmp_path / "s.tsv")
    assert not (tmp_path / "s.tsv").exists()
    (slide_dir / src["slide_id"].iloc[0]).write_bytes(b"")
    args = ["sheet", "--table", f"{COHORT}={table_csv}", "--out", str(tmp_path / "s.tsv")]
    assert main([*args, "--slide-dir", str(tmp_path / "slides" / "{cohort}")]) == 0
    sheet = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert sheet["slide_id"].tolist() == [slide_stem(src["slide_id"].iloc[0])]


def _config(**byo) -> dict:
    """A validated-looking config with the byo keys given."""
    return {
        "data_source": "local",
        "cohorts": [COHORT, "OTHER"],
        "samples": "/nonexistent/slides.tsv",
        "clinical": "out/{cohort}/clinical.tsv",
        "omics": "out/omics.tsv",
        "splits": {"source": "user"},
        "byo": {"tables": {}, "slide_dir": None, "splits_dir": None, **byo},
    }


def test_byo_config_errors_list_every_problem():
    from mmsurv.acquire.byo import check_byo_config

    check_byo_config(_config(splits_dir="s/{cohort}"), path_models=["attn_mil"])  # no tables
    config = _config(tables={COHORT: "out/BYO/clinical.tsv"})
    with pytest.raises(BYOError) as err:
        check_byo_config(config, path_models=["attn_mil"])
    message = str(err.value)
    assert "no MCAT-style table for cohort(s) ['OTHER']" in message
    assert "`omics` (out/omics.tsv) must contain {cohort}" in message
    assert "splits.source is user but byo.splits_dir" in message
    assert f"cohort(s) ['{COHORT}', 'OTHER'] have no slides: models ['attn_mil']" in message
    config = _config(tables={COHORT: f"out/{COHORT}/clinical.tsv"}, slide_dir="x")
    config["data_source"] = "tcga"
    with pytest.raises(BYOError, match="byo.tables is read only with data_source: local"):
        check_byo_config(config, path_models=[])
    config = _config(tables={COHORT: f"out/{COHORT}/clinical.tsv"}, splits_dir="s")
    with pytest.raises(BYOError, match=r"would be overwritten by `clinical`/`omics`"):
        check_byo_config(config, path_models=[])


# --------------------------------------------------------------------------- unsuffixed genes
def _with_unsuffixed(**extra: list) -> pd.DataFrame:
    """The MCAT table with extra per-case columns (one value per case, repeated per slide)."""
    table = mcat_table()
    row_case = table["case_id"].map({case: i for i, case in enumerate(CASES)})
    extra_cols = {name: [values[i] for i in row_case] for name, values in extra.items()}
    return pd.concat([table, pd.DataFrame(extra_cols, index=table.index)], axis=1)


UNSUFFIXED = {"EGFR": [0, 1, 0, 1, 1, 0], "HLA-A": [1, 0, 0, 0, 1, 1], "C1orf112": [0] * 6}


def test_unsuffixed_gene_columns_are_refused_by_default(tmp_path):
    """Gene-like columns without a suffix would become clinical columns: refused, with the fix."""
    path = write_mcat(tmp_path, _with_unsuffixed(**UNSUFFIXED))
    with pytest.raises(BYOError) as err:
        read_mcat_table(path, cohort=COHORT)
    message = str(err.value)
    assert f"{path} (cohort {COHORT}): 3 column(s) look like genes" in message
    assert "['EGFR', 'HLA-A', 'C1orf112']" in message
    assert "byo.unsuffixed: mut" in message and "byo.unsuffixed: ignore" in message


def test_unsuffixed_mut_reads_them_as_mutation_calls(tmp_path):
    table = _with_unsuffixed(**UNSUFFIXED, mir21=[1, 0, 1, 0, 1, 0])  # a gene of the families
    path = write_mcat(tmp_path, table)
    read = read_mcat_table(path, unsuffixed="mut", known_genes={"mir21", "TP53"})
    expected = ["EGFR_mut", "HLA-A_mut", "C1orf112_mut", "mir21_mut"]
    assert set(expected) <= set(read.omics.columns)
    np.testing.assert_array_equal(read.omics["EGFR_mut"], UNSUFFIXED["EGFR"])
    assert not {"EGFR", "HLA-A", "C1orf112", "mir21"} & set(read.clinical.columns)
    with pytest.raises(BYOError, match=r"rename \['TP53'\] to <GENE>_mut.*already has"):
        read_mcat_table(write_mcat(tmp_path, _with_unsuffixed(TP53=[1] * 6)), unsuffixed="mut")


def test_unsuffixed_ignore_drops_them_with_a_warning(tmp_path, caplog):
    path = write_mcat(tmp_path, _with_unsuffixed(**UNSUFFIXED))
    read = read_mcat_table(path, unsuffixed="ignore")
    assert not set(UNSUFFIXED) & {*read.clinical.columns, *read.omics.columns}
    warning = [r for r in caplog.records if r.levelno == logging.WARNING][0].getMessage()
    assert "dropped 3 column(s)" in warning and "'EGFR'" in warning


def test_metadata_and_clinical_columns_are_not_genes(tmp_path):
    """MCAT's metadata, TCGA-CDR endpoints, lower-case and text columns stay clinical."""
    extra = {"OS": [1, 0, 1, 0, 1, 0], "bmi": [20.5] * 6, "GRADE": ["high"] * 6, "Stage_x": [1] * 6}
    read = read_mcat_table(write_mcat(tmp_path, _with_unsuffixed(**extra)))  # default: error
    assert {"site", "is_female", "oncotree_code", "age", "train", *extra} <= set(
        read.clinical.columns
    )
    assert not any(c in read.omics.columns for c in extra)
    table = _with_unsuffixed(event=[9] * 6)  # a table's own `event` does not clash with ours
    read = read_mcat_table(write_mcat(tmp_path, table))
    assert read.clinical.columns.tolist().count("event") == 1
    assert read.clinical["event"].tolist() == [c == 0 for c in table["censorship"][:6]]


def test_write_cohort_tables_passes_unsuffixed_and_the_family_genes(tmp_path, signatures):
    from mmsurv.acquire.byo import write_cohort_tables

    path = write_mcat(tmp_path, _with_unsuffixed(**UNSUFFIXED))
    outs = {
        "clinical_out": tmp_path / "c.tsv",
        "omics_out": tmp_path / "o.tsv",
        "gene_families_csv": signatures,
        "report_out": tmp_path / "r.tsv",
    }
    with pytest.raises(BYOError, match="look like genes"):
        write_cohort_tables(path, cohort=COHORT, **outs)
    write_cohort_tables(path, cohort=COHORT, unsuffixed="mut", **outs)
    assert "EGFR_mut" in pd.read_csv(tmp_path / "o.tsv", sep="\t").columns


def test_command_line_unsuffixed(tmp_path, restore_logging):
    from mmsurv.acquire.byo import main

    args = [
        "convert",
        "--cohort",
        COHORT,
        "--table",
        str(write_mcat(tmp_path, _with_unsuffixed(**UNSUFFIXED))),
    ]
    args += ["--clinical-out", str(tmp_path / "c.tsv"), "--omics-out", str(tmp_path / "o.tsv")]
    with pytest.raises(BYOError, match="look like genes"):
        main(args)
    assert main([*args, "--unsuffixed", "ignore"]) == 0
    assert "EGFR" not in pd.read_csv(tmp_path / "c.tsv", sep="\t").columns


def test_wide_table_converts_without_fragmentation_warnings(tmp_path, signatures):
    """Thousands of clinical columns were inserted one by one: a PerformanceWarning each."""
    rng = np.random.default_rng(1)
    clinical = {f"clinical_{i}": rng.integers(0, 3, len(CASES)).tolist() for i in range(400)}
    clinical |= {f"text_{i}": rng.choice(["a", "b"], len(CASES)).tolist() for i in range(100)}
    genes = {f"G{i}_mut": rng.integers(0, 2, len(CASES)).tolist() for i in range(400)}
    path = write_mcat(tmp_path, _with_unsuffixed(**clinical, **genes))
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        res = convert_mcat(
            path,
            cohort=COHORT,
            clinical_out=tmp_path / "c.tsv",
            omics_out=tmp_path / "o.tsv",
            signatures_csv=signatures,
        )
    # survival_months, event, MCAT's 5, sex (from is_female), ours
    assert res.table.clinical.shape[1] == 2 + 5 + 1 + 500
    assert res.table.omics.shape[1] == len(GENES) * 2 + 1 + 400


# --------------------------------------------------------------------------- splits_dir mapping
def test_splits_dir_is_a_template_or_a_mapping():
    from mmsurv.acquire.byo import check_byo_config, for_cohort

    assert for_cohort("splits/{cohort}", COHORT) == f"splits/{COHORT}"
    mcat_layout = {COHORT: "splits/5foldcv/tcga_blca", "OTHER": "splits/5foldcv/other"}
    assert for_cohort(mcat_layout, COHORT) == "splits/5foldcv/tcga_blca"
    with pytest.raises(BYOError, match=r"byo.splits_dir names no path for cohort LUAD"):
        for_cohort(mcat_layout, "LUAD")
    check_byo_config(_config(splits_dir=mcat_layout), path_models=[])
    with pytest.raises(BYOError, match=r"has no directory for cohort\(s\) \['OTHER'\]"):
        check_byo_config(_config(splits_dir={COHORT: "s"}), path_models=[])


@pytest.mark.parametrize(
    ("splits_dir", "valid"),
    [
        (None, True),
        ("splits/{cohort}", True),
        ({COHORT: "splits/5foldcv/tcga_blca"}, True),
        ({COHORT: 3}, False),
        ({}, False),
        (["splits"], False),
    ],
)
def test_schema_accepts_splits_dir_template_or_mapping(splits_dir, valid):
    from jsonschema import ValidationError
    from snakemake.utils import validate

    schema = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
    config = {
        "cohorts": [COHORT],
        "samples": "s.tsv",
        "clinical": "c/{cohort}.tsv",
        "omics": "o/{cohort}.tsv",
        "data_source": "local",
        "training": {"models": ["snn"]},
        "byo": {"splits_dir": splits_dir},
    }
    if valid:
        validate(config, str(schema))
        assert config["byo"]["unsuffixed"] == "error"  # the default
    else:
        with pytest.raises((ValidationError, Exception), match="splits_dir|is not valid"):
            validate(config, str(schema))


def test_slide_sheet_reads_tables_whatever_byo_unsuffixed(tmp_path):
    """The sheet needs only slide ids: gene columns without a suffix are byo_tables' business."""
    from mmsurv.acquire.byo import write_byo_sheet

    src = _with_unsuffixed(**UNSUFFIXED)
    (tmp_path / "slides").mkdir()
    (tmp_path / "slides" / src["slide_id"].iloc[0]).write_bytes(b"")
    sheet = write_byo_sheet(
        {COHORT: write_mcat(tmp_path, src)}, str(tmp_path / "slides"), tmp_path / "s.tsv"
    )
    assert len(sheet) == 1
