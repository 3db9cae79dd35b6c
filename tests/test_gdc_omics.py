"""GDC omics acquisition (acquisition.omics.source: gdc) against a local server imitating the GDC.

The served files are the STAR-counts and gene-level copy-number fixtures of tests/test_tcga.py
(real GDC layouts), plus one more case (A003) written here in the same layouts.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from test_gdc import FakeGDC, make_omics_hit, sample_entry  # tests/ is on sys.path
from test_tcga_workflow import write_sheet
from test_workflow import _job_counts, copy_repo, snakemake

from mmsurv.acquire import gdc_api, gdc_omics, transfer
from mmsurv.acquire.cohort import REPORT_FILES, prepare_cohort_from_files
from mmsurv.acquire.tcga_io import TCGAFormatError
from mmsurv.bags.data import read_clinical
from mmsurv.bags.omics import read_omics_table

REPO = Path(__file__).resolve().parents[1]
FIX = Path(__file__).parent / "fixtures" / "tcga"
GDC_FIX = FIX / "gdc"
CDR = FIX / "TCGA-CDR-SupplementalTableS1.tsv"
FAMILIES = REPO / "resources" / "gene_families.csv"
STAR_NAME = "{}.rna_seq.augmented_star_gene_counts.tsv"
CNV_NAME = "TCGA-X1.{}.ascat3.gene_level_copy_number.v36.tsv"
# aliquot barcode -> file id of the STAR-counts fixtures (A002-11A is a normal: never chosen)
STAR = {
    "TCGA-X1-A001-01A-11R-A277-07": "2b1c7e2a-1111-4c1d-9e0a-000000000001",
    "TCGA-X1-A001-01B-21R-A277-07": "2b1c7e2a-1111-4c1d-9e0a-000000000002",
    "TCGA-X1-A002-01A-11R-A277-07": "2b1c7e2a-1111-4c1d-9e0a-000000000003",
    "TCGA-X1-A002-11A-11R-A277-07": "2b1c7e2a-1111-4c1d-9e0a-000000000004",
}
CNV = {f"TCGA-X1-A00{i}-01A-11D-A27A-01": f"5f0e9c1d-2222-4b7a-8c3e-00000000000{i}" for i in (1, 2)}
EXTRA_STAR = "2b1c7e2a-1111-4c1d-9e0a-000000000013"  # A003, derived from A002's file
EXTRA_CNV = "5f0e9c1d-2222-4b7a-8c3e-000000000003"  # A003, derived from A001's file


def _scaled_star(text: str, factor: float) -> str:
    """A STAR-counts file with every gene's counts and TPM/FPKM scaled (summary rows kept)."""
    out = []
    for line in text.splitlines():
        cells = line.split("\t")
        if line.startswith("ENSG"):
            counts = [str(int(int(c) * factor)) for c in cells[3:6]]
            rates = [f"{float(c) * factor:.4f}" for c in cells[6:9]]
            cells = cells[:3] + counts + rates
        out.append("\t".join(cells))
    return "\n".join(out) + "\n"


def _shifted_cnv(text: str) -> str:
    """A gene-level copy-number file with one more copy of every gene (empty cells stay empty)."""
    out = []
    for line in text.splitlines():
        cells = line.split("\t")
        if line.startswith("ENSG"):
            cells[5:8] = [str(int(c) + 1) if c else c for c in cells[5:8]]
        out.append("\t".join(cells))
    return "\n".join(out) + "\n"


def serve_cohort(fake: FakeGDC) -> dict[str, bytes]:
    """Register the fixture files (and case A003) as GDC files with omics hits; {file_id: bytes}."""
    files: dict[str, bytes] = {}
    for aliquot, fid in STAR.items():
        files[fid] = (GDC_FIX / STAR_NAME.format(fid)).read_bytes()
        fake.hits.append(
            make_omics_hit(
                fid,
                "rnaseq",
                aliquot[:12],
                [sample_entry(aliquot[:16], [aliquot])],
                data=files[fid],
                file_name=STAR_NAME.format(fid),
            )
        )
    a002 = (GDC_FIX / STAR_NAME.format(STAR["TCGA-X1-A002-01A-11R-A277-07"])).read_text()
    files[EXTRA_STAR] = _scaled_star(a002, 1.5).encode()
    fake.hits.append(
        make_omics_hit(
            EXTRA_STAR,
            "rnaseq",
            "TCGA-X1-A003",
            [sample_entry("TCGA-X1-A003-01A", ["TCGA-X1-A003-01A-11R-A277-07"])],
            data=files[EXTRA_STAR],
            file_name=STAR_NAME.format(EXTRA_STAR),
        )
    )
    a001 = (GDC_FIX / CNV_NAME.format(CNV["TCGA-X1-A001-01A-11D-A27A-01"])).read_text()
    files[EXTRA_CNV] = _shifted_cnv(a001).encode()
    cnv = {**CNV, "TCGA-X1-A003-01A-11D-A27A-01": EXTRA_CNV}
    for aliquot, fid in cnv.items():
        if fid != EXTRA_CNV:
            files[fid] = (GDC_FIX / CNV_NAME.format(fid)).read_bytes()
        normal = aliquot[:13] + "10A-01D-A27A-01"
        fake.hits.append(
            make_omics_hit(
                fid,
                "cnv",
                aliquot[:12],
                [sample_entry(normal[:16], [normal]), sample_entry(aliquot[:16], [aliquot])],
                data=files[fid],
                file_name=CNV_NAME.format(fid),
            )
        )
    fake.files.update(files)
    return files


@pytest.fixture
def server() -> Iterator[FakeGDC]:
    fake = FakeGDC()
    yield fake
    fake.close()


def _download_all(server: FakeGDC, tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """The cohort's omics manifest, then both modalities' downloads; (manifest, file tables)."""
    manifest = tmp_path / "manifest" / "omics" / "TCGA-BLCA.tsv"
    gdc_omics.write_cohort_omics_manifest("TCGA-BLCA", manifest, download=server.download_cfg)
    tables = {m: tmp_path / "acq" / f"{m}_files.tsv" for m in gdc_omics.OMICS_MODALITIES}
    for modality, table in tables.items():
        gdc_omics.fetch_omics_files(
            manifest,
            modality,
            table,
            omics_dir=tmp_path / "omics",
            download={**server.download_cfg, "chunk_kb": 1},
        )
    return manifest, tables


def _cohort_kwargs(tmp_path: Path, out: Path, **kwargs: Any) -> dict[str, Any]:
    return {
        "cohort": "TCGA-BLCA",
        "slide_sheet": tmp_path / "slides.tsv",
        "survival": CDR,
        "survival_source": "tcdr",
        "gene_families": FAMILIES,
        "clinical_out": out / "clinical.tsv",
        "omics_out": out / "omics.tsv",
        "report_dir": out / "acquisition",
        **kwargs,
    }


def test_cohort_omics_table_from_gdc_files_end_to_end(server: FakeGDC, tmp_path: Path) -> None:
    files = serve_cohort(server)
    server.plans[STAR["TCGA-X1-A001-01A-11R-A277-07"]] = ["cut"]
    server.plans[CNV["TCGA-X1-A002-01A-11D-A27A-01"]] = ["500"]
    manifest, tables = _download_all(server, tmp_path)

    listing = gdc_omics.read_omics_manifest(manifest)
    assert listing["modality"].value_counts().to_dict() == {"rnaseq": 5, "cnv": 3}
    for fid, data in files.items():  # gdc-client layout, byte-identical
        (path,) = (tmp_path / "omics" / fid).iterdir()
        assert path.read_bytes() == data
    assert len(server.data_requests(STAR["TCGA-X1-A001-01A-11R-A277-07"])) == 2  # cut, retried
    assert len(server.data_requests(CNV["TCGA-X1-A002-01A-11D-A27A-01"])) == 2  # 500, retried
    rna_files = gdc_omics.read_omics_file_table(tables["rnaseq"], "rnaseq")
    assert sorted(rna_files) == sorted([*STAR, "TCGA-X1-A003-01A-11R-A277-07"])

    # a second run skips the verified files; a corrupted one (same size) is fetched again
    n_before = len(server.seen)
    target = tmp_path / "omics" / EXTRA_CNV / CNV_NAME.format(EXTRA_CNV)
    target.write_bytes(b"0" * len(files[EXTRA_CNV]))
    _download_all(server, tmp_path)
    data_gets = [s.path for s in server.seen[n_before:] if s.method == "GET"]
    assert data_gets == [f"/data/{EXTRA_CNV}"]
    assert target.read_bytes() == files[EXTRA_CNV]

    cases = ["TCGA-X1-A001", "TCGA-X1-A002", "TCGA-X1-A003"]
    write_sheet(tmp_path / "slides.tsv", {"TCGA-BLCA": [*cases, "TCGA-X1-A005"]})
    out = tmp_path / "cohort"
    result = prepare_cohort_from_files(
        **_cohort_kwargs(
            tmp_path,
            out,
            rnaseq=tables["rnaseq"],
            cnv=tables["cnv"],
            omics_source="gdc",
            rnaseq_value="tpm_unstranded",
            cnv_value="copy_number",
        )
    )
    omics = read_omics_table(out / "omics.tsv")
    assert list(omics.index) == cases
    assert {c.rpartition("_")[2] for c in omics.columns} == {"rnaseq", "cnv"}
    # log2(TPM + 1) of the 01A aliquot of A001 (its 01B has 1.7x the TPM)
    assert omics.loc["TCGA-X1-A001", "TP53_rnaseq"] == pytest.approx(math.log2(38.2 + 1))
    assert omics.loc["TCGA-X1-A003", "TP53_cnv"] == 2.0  # A001's 1 copy + 1
    assert list(read_clinical(out / "clinical.tsv").index) == cases
    assert result.summary.iloc[0]["n_slide_only"] == 1  # A005: slides and survival, no omics
    report = pd.read_csv(out / "acquisition" / REPORT_FILES["omics_report"], sep="\t")
    assert list(report["modality"]) == ["rnaseq", "cnv"]
    dropped = pd.read_csv(out / "acquisition" / REPORT_FILES["dropped_genes"], sep="\t")
    assert "IL6_cnv" in set(dropped["column"])  # empty for A001/A003: one value, zero variance

    # the same report files, with the same columns, as the cBioPortal source writes
    cbio = tmp_path / "cbio"
    prepare_cohort_from_files(
        **_cohort_kwargs(
            tmp_path,
            cbio,
            rnaseq=FIX / "cbioportal" / "data_mrna_seq_v2_rsem.txt",
            cnv=FIX / "cbioportal" / "data_cna.txt",
        )
    )
    for name in REPORT_FILES.values():
        ours = pd.read_csv(out / "acquisition" / name, sep="\t", nrows=0)
        theirs = pd.read_csv(cbio / "acquisition" / name, sep="\t", nrows=0)
        assert list(ours.columns) == list(theirs.columns), name


def test_failed_omics_downloads_are_named_and_leave_no_table(
    server: FakeGDC, tmp_path: Path
) -> None:
    serve_cohort(server)
    bad = CNV["TCGA-X1-A002-01A-11D-A27A-01"]
    for hit in server.hits:
        if hit["file_id"] == bad:
            hit["md5sum"] = "0" * 32
    manifest = tmp_path / "m.tsv"
    gdc_omics.write_cohort_omics_manifest("TCGA-BLCA", manifest, download=server.download_cfg)
    out = tmp_path / "cnv_files.tsv"
    with pytest.raises(
        transfer.DownloadError,
        match=rf"1 of 3 cnv file\(s\) of .*m.tsv failed: cnv of TCGA-X1-A002-01A \(GDC file {bad}\)"
        r": md5 .* does not match",
    ):
        gdc_omics.fetch_omics_files(
            manifest, "cnv", out, omics_dir=tmp_path / "o", download=server.download_cfg
        )
    assert not out.exists()
    assert len(list((tmp_path / "o").rglob("*.tsv"))) == 2  # the good files stay for a rerun


def test_gdc_file_table_errors_name_the_file_and_key(server: FakeGDC, tmp_path: Path) -> None:
    serve_cohort(server)
    _, tables = _download_all(server, tmp_path)
    write_sheet(tmp_path / "slides.tsv", {"TCGA-BLCA": ["TCGA-X1-A001"]})
    with pytest.raises(gdc_api.ManifestError, match=r"rnaseq_files.tsv: expected only 'cnv'"):
        gdc_omics.read_omics_file_table(tables["rnaseq"], "cnv")
    gdc_tables = {"rnaseq": tables["rnaseq"], "cnv": tables["cnv"], "omics_source": "gdc"}
    with pytest.raises(TCGAFormatError, match=r"augmented_star_gene_counts.tsv: missing .*'tpm'"):
        prepare_cohort_from_files(
            **_cohort_kwargs(tmp_path, tmp_path / "x", **gdc_tables, rnaseq_value="tpm")
        )
    with pytest.raises(ValueError, match="acquisition.omics.source must be 'cbioportal' or 'gdc'"):
        prepare_cohort_from_files(
            **_cohort_kwargs(tmp_path, tmp_path / "x", **{**gdc_tables, "omics_source": "fh"})
        )


# --------------------------------------------------------------------------- the rules
def _gdc_config(**acquisition: Any) -> dict[str, Any]:
    return {"acquisition": {"omics": {"source": "gdc"}, **acquisition}}


def test_dry_run_plans_the_gdc_omics_jobs_instead_of_cbioportal(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path)
    cases = {c: [f"TCGA-{c[-2:]}-A001"] for c in ("TCGA-BLCA", "TCGA-LUAD", "TCGA-UCEC")}
    write_sheet(repo / "resources/tcga/slides.tsv", cases)
    gdc_source = 'acquisition={"omics": {"source": "gdc"}}'  # merged into config/tcga.yaml
    proc = snakemake(
        repo, "-n", "--configfile", "config/tcga.yaml", "--config", gdc_source, "--quiet", "rules"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts["gdc_omics_manifest"] == 3
    assert counts["download_gdc_omics"] == 6  # cohort x {rnaseq, cnv}
    assert counts["tcga_cohort_tables"] == 3 and counts["download_tcga_cdr"] == 1
    assert "download_cbioportal_study" not in counts and "unpack_cbioportal_study" not in counts
    assert counts["train"] > 0 and counts["cohort_summary"] == 1

    # cBioPortal survival with GDC omics: the study archives are fetched for the clinical file
    (repo / "os.yaml").write_text(yaml.safe_dump(_gdc_config(survival={"source": "cbioportal"})))
    proc = snakemake(repo, "-n", "--configfile", "config/tcga.yaml", "os.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    counts = _job_counts(text)
    assert counts["download_cbioportal_study"] == counts["unpack_cbioportal_study"] == 3
    assert counts["download_gdc_omics"] == 6 and "download_tcga_cdr" not in counts
    assert "acquisition/cbioportal/data_clinical_patient.txt" in text
    assert "data_mrna_seq_v2_rsem.txt" not in text

    # mutations come only from the cBioPortal MAF: refused with source gdc, naming the keys
    mut = {"acquisition": {"omics": {"source": "gdc", "mutations": True}}}
    (repo / "mut.yaml").write_text(yaml.safe_dump(mut))
    proc = snakemake(repo, "-n", "--configfile", "config/tcga.yaml", "mut.yaml")
    assert proc.returncode != 0
    assert "acquisition.omics.mutations: true needs acquisition.omics.source: cbioportal" in (
        proc.stdout + proc.stderr
    )


def test_gdc_omics_rules_list_download_and_write_the_tables(
    server: FakeGDC, tmp_path: Path
) -> None:
    """Real Snakemake on the acquisition targets with source gdc, against the local server."""
    files = serve_cohort(server)
    server.files["cdr.tsv"] = CDR.read_bytes()
    (tmp_path / "repo").mkdir()
    repo = copy_repo(tmp_path / "repo")
    cases = ["TCGA-X1-A001", "TCGA-X1-A002", "TCGA-X1-A003"]
    write_sheet(repo / "test_slides.tsv", {"TCGA-BLCA": cases})
    cfg = {
        "cohorts": ["TCGA-BLCA"],
        "samples": "test_slides.tsv",
        "download": server.download_cfg,
        "acquisition": {
            "omics": {"source": "gdc", "gdc": {"dir": "omics_files"}},
            "survival": {
                "source": "tcdr",
                "tcdr_url": f"{server.url}/data/cdr.tsv",
                "tcdr_format": "tsv",
                "tcdr_md5": hashlib.md5(CDR.read_bytes()).hexdigest(),
            },
        },
    }
    (repo / "test.yaml").write_text(yaml.safe_dump(cfg))
    targets = ["results-tcga/TCGA-BLCA/omics.tsv", "results-tcga/tables/cohort_summary.tsv"]
    run = snakemake(repo, *targets, "--configfile", "config/tcga.yaml", "test.yaml", "--cores", "1")
    assert run.returncode == 0, run.stderr[-4000:]
    out = repo / "results-tcga"
    assert (out / "manifest/omics/TCGA-BLCA.tsv").is_file()
    for fid, data in files.items():
        (path,) = (repo / "omics_files" / fid).iterdir()
        assert path.read_bytes() == data
    assert "md5 verified" in (out / "logs/acquisition/TCGA-BLCA_download_cnv.log").read_text()
    assert list(read_omics_table(out / "TCGA-BLCA/omics.tsv").index) == cases
    assert not (out / "TCGA-BLCA/acquisition/cbioportal").exists()
    for name in REPORT_FILES.values():
        assert (out / "TCGA-BLCA/acquisition" / name).is_file(), name
    summary = pd.read_csv(out / "tables/cohort_summary.tsv", sep="\t")
    assert summary.loc[0, "n_multimodal"] == 3
