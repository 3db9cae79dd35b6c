"""TCGA omics and survival acquisition: archive unpacking; the rules against a local server."""

from __future__ import annotations

import hashlib
import io
import logging
import random
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_gdc import FAST, FakeGDC  # tests/ is on sys.path (pytest rootdir import mode)
from test_workflow import _job_counts, copy_repo, snakemake

from mmsurv.acquire.cbioportal import (
    CBIOPORTAL_FILES,
    cbioportal_files,
    study_archive_url,
    unpack_cbioportal_study,
)
from mmsurv.acquire.cohort import REPORT_FILES
from mmsurv.acquire.harmonise import PAPER_CASES
from mmsurv.acquire.tcga_io import TCGAFormatError
from mmsurv.acquire.transfer import ChecksumError, fetch_source
from mmsurv.bags.data import read_clinical
from mmsurv.bags.omics import read_omics_table

CBIO = Path(__file__).parent / "fixtures" / "tcga" / "cbioportal"
CDR = Path(__file__).parent / "fixtures" / "tcga" / "TCGA-CDR-SupplementalTableS1.tsv"
STUDY = "x1_tcga_pan_can_atlas_2018"  # the fixtures' cancer_study_identifier
ARCHIVE = f"{STUDY}.tar.gz"


def study_tarball(prefix: str = f"{STUDY}/", extra: list[tarfile.TarInfo] | None = None) -> bytes:
    """A cBioPortal-style study archive: the fixture files plus a file the rules never need."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(CBIO.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=prefix + path.relative_to(CBIO).as_posix())
        unused = random.Random(0).randbytes(32 * 1024)  # incompressible: the archive is > 32 KiB
        info = tarfile.TarInfo(f"{prefix}data_methylation_hm450.txt")
        info.size = len(unused)
        tar.addfile(info, io.BytesIO(unused))
        for member in extra or []:
            data = b"x" * member.size
            tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buf.getvalue()


def _outputs(tmp_path: Path, mutations: bool = True) -> dict[str, Path]:
    return {k: tmp_path / "out" / v for k, v in cbioportal_files(mutations=mutations).items()}


# --------------------------------------------------------------------------- unpacking
@pytest.mark.parametrize("prefix", [f"{STUDY}/", f"./{STUDY}/", ""])
def test_unpack_extracts_only_the_needed_files(tmp_path: Path, prefix: str) -> None:
    archive = tmp_path / ARCHIVE
    archive.write_bytes(study_tarball(prefix))
    outputs = _outputs(tmp_path, mutations=False)
    done = unpack_cbioportal_study(archive, outputs, study=STUDY)
    assert set(done) == {"rnaseq", "cnv", "clinical"}
    for role, path in outputs.items():
        assert path.read_bytes() == (CBIO / CBIOPORTAL_FILES[role]).read_bytes()
    written = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == sorted(Path(CBIOPORTAL_FILES[r]).name for r in outputs)


def test_unpack_never_writes_where_member_names_point(tmp_path: Path) -> None:
    evil = tarfile.TarInfo(f"{STUDY}/../../evil.txt")
    evil.size = 4
    absolute = tarfile.TarInfo(str(tmp_path / "abs.txt"))
    absolute.size = 4
    archive = tmp_path / "a" / ARCHIVE
    archive.parent.mkdir()
    archive.write_bytes(study_tarball(extra=[evil, absolute]))
    unpack_cbioportal_study(archive, _outputs(tmp_path), study=STUDY)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "abs.txt").exists()
    assert not list(tmp_path.parent.glob("evil.txt"))


def test_unpack_refuses_a_linked_member_and_cleans_up(tmp_path: Path) -> None:
    link = tarfile.TarInfo(f"{STUDY}/data_cna.txt")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(CBIO / "data_clinical_patient.txt", arcname=f"{STUDY}/data_clinical_patient.txt")
        tar.addfile(link)
    archive = tmp_path / ARCHIVE
    archive.write_bytes(buf.getvalue())
    outputs = _outputs(tmp_path, mutations=False)
    with pytest.raises(TCGAFormatError, match=rf"{ARCHIVE} \(study {STUDY}\): data_cna.txt is not"):
        unpack_cbioportal_study(archive, outputs, study=STUDY)
    assert not any(p.exists() for p in outputs.values())  # clinical was written, then removed


def test_unpack_errors_name_the_archive_study_and_files(tmp_path: Path) -> None:
    archive = tmp_path / ARCHIVE
    archive.write_bytes(study_tarball(prefix="other_study/"))
    with pytest.raises(
        TCGAFormatError,
        match=r"\(study x1_tcga_pan_can_atlas_2018\): missing \['data_mrna_seq_v2_rsem.txt'.*"
        r"top-level entries are \['other_study'\]",
    ):
        unpack_cbioportal_study(archive, _outputs(tmp_path), study=STUDY)
    archive.write_bytes(study_tarball()[:300])
    with pytest.raises(TCGAFormatError, match="not a readable tar archive"):
        unpack_cbioportal_study(archive, _outputs(tmp_path), study=STUDY)
    with pytest.raises(ValueError, match=r"unknown cBioPortal file role\(s\) \['rna'\]"):
        unpack_cbioportal_study(archive, {"rna": tmp_path / "x"}, study=STUDY)


def test_study_archive_url() -> None:
    url = "https://cbioportal-datahub.s3.amazonaws.com/{study}.tar.gz"
    assert study_archive_url(url, "blca_tcga_pan_can_atlas_2018") == (
        "https://cbioportal-datahub.s3.amazonaws.com/blca_tcga_pan_can_atlas_2018.tar.gz"
    )
    with pytest.raises(ValueError, match=r"archive_url 'x.tar.gz' must contain .*\{study\}"):
        study_archive_url("x.tar.gz", "s")
    with pytest.raises(ValueError, match="study id '../s'"):
        study_archive_url(url, "../s")


@pytest.fixture
def server() -> Iterator[FakeGDC]:
    fake = FakeGDC()
    yield fake
    fake.close()


def test_fetch_source_resumes_and_checks_md5_when_given(
    server: FakeGDC, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = study_tarball()
    server.files[ARCHIVE] = data
    server.plans[ARCHIVE] = ["cut"]
    url = f"{server.url}/data/{ARCHIVE}"
    settings = {**FAST, "chunk_kb": 1}
    with caplog.at_level(logging.WARNING, logger="mmsurv.acquire.transfer"):
        fetch_source(url, tmp_path / "a.tar.gz", md5=None, label="study S", download=settings)
    assert (tmp_path / "a.tar.gz").read_bytes() == data
    assert "study S: no md5 configured" in caplog.text
    assert server.data_requests(ARCHIVE)[1].headers["Range"].startswith("bytes=")
    md5 = hashlib.md5(data).hexdigest()
    fetch_source(url, tmp_path / "b.tar.gz", md5=md5, label="study S", download=settings)
    with pytest.raises(ChecksumError, match=r"study S: md5 .* does not match"):
        fetch_source(url, tmp_path / "c.tar.gz", md5="0" * 32, label="study S", download=settings)
    assert not (tmp_path / "c.tar.gz").exists()


# --------------------------------------------------------------------------- the rules
def write_sheet(path: Path, cases: dict[str, list[str]]) -> pd.DataFrame:
    """A GDC-style slide sheet (as gdc_slide_sheet writes it) for {cohort: [case ids]}."""
    rows = []
    for cohort, case_ids in cases.items():
        for i, case in enumerate(case_ids):
            file_id = str(uuid.UUID(hashlib.md5(f"{cohort}/{case}".encode()).hexdigest()))
            slide = f"{case}-01Z-00-DX1"
            rows.append(
                {
                    "cohort": cohort,
                    "case_id": case,
                    "slide_id": slide,
                    "path": f"data/tcga/slides/{file_id}/{slide}.svs",
                    "file_id": file_id,
                    "file_name": f"{slide}.svs",
                    "file_size": 1000 + i,
                    "md5sum": hashlib.md5(slide.encode()).hexdigest(),
                }
            )
    sheet = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.to_csv(path, sep="\t", index=False)
    return sheet


def test_acquisition_rules_download_unpack_and_write_the_tables(
    server: FakeGDC, tmp_path: Path
) -> None:
    """Real Snakemake on the acquisition targets: archive (cut once, resumed) → tables."""
    (tmp_path / "repo").mkdir()
    repo = copy_repo(tmp_path / "repo")
    server.files[ARCHIVE] = study_tarball()
    server.plans[ARCHIVE] = ["cut"]
    server.files["cdr.tsv"] = CDR.read_bytes()
    write_sheet(
        repo / "test_slides.tsv", {"TCGA-BLCA": ["TCGA-X1-A001", "TCGA-X1-A002", "TCGA-X1-A006"]}
    )
    cfg = {
        "cohorts": ["TCGA-BLCA"],
        "samples": "test_slides.tsv",
        "download": {**FAST, "chunk_kb": 1, "progress_mb": 0.01},
        "acquisition": {
            "omics": {
                "studies": {"TCGA-BLCA": STUDY},
                "archive_url": f"{server.url}/data/{{study}}.tar.gz",
                "mutations": True,
            },
            "survival": {"source": "cbioportal"},
        },
    }
    (repo / "test.yaml").write_text(yaml.safe_dump(cfg))
    out = repo / "results-tcga"
    targets = [
        "results-tcga/TCGA-BLCA/clinical.tsv",
        "results-tcga/TCGA-BLCA/omics.tsv",
        "results-tcga/tables/cohort_summary.tsv",
    ]
    run = snakemake(repo, *targets, "--configfile", "config/tcga.yaml", "test.yaml", "--cores", "1")
    assert run.returncode == 0, run.stderr[-4000:]
    assert [s.headers.get("Range") for s in server.data_requests(ARCHIVE)][0] is None
    assert len(server.data_requests(ARCHIVE)) == 2  # cut, then resumed with Range
    assert "no md5 configured" in (out / f"logs/acquisition/download_{STUDY}.log").read_text()

    clinical = read_clinical(out / "TCGA-BLCA/clinical.tsv")
    assert list(clinical.index) == ["TCGA-X1-A001", "TCGA-X1-A002"]  # slides + omics + survival
    assert clinical.loc["TCGA-X1-A001", "survival_months"] == pytest.approx(14.36)
    omics = read_omics_table(out / "TCGA-BLCA/omics.tsv")
    assert list(omics.index) == ["TCGA-X1-A001", "TCGA-X1-A002"]
    assert {c.rpartition("_")[2] for c in omics.columns} == {"rnaseq", "cnv", "mut"}
    assert "TP53_rnaseq" in omics.columns and "CDK4_rnaseq" not in omics.columns  # zero variance

    summary = pd.read_csv(out / "tables/cohort_summary.tsv", sep="\t")
    row = summary.set_index("cohort").loc["TCGA-BLCA"]
    assert (row["n_all_modalities"], row["n_slide_only"], row["n_omics_only"]) == (2, 1, 1)
    assert (row["n_multimodal"], row["paper_cases"]) == (2, PAPER_CASES["BLCA"])
    assert row["diff_vs_paper"] == 2 - 371
    families = pd.read_csv(out / "tables/gene_family_report.tsv", sep="\t")
    assert families["family"].nunique() == 6 and set(families["cohort"]) == {"TCGA-BLCA"}
    assert (out / "tables/omics_report.tsv").is_file()
    for name in REPORT_FILES.values():
        assert (out / "TCGA-BLCA/acquisition" / name).is_file(), name
    dropped = pd.read_csv(out / "TCGA-BLCA/acquisition/omics_dropped_genes.tsv", sep="\t")
    assert "CDK4_rnaseq" in set(dropped["column"])

    # survival from the TCGA-CDR table instead (served as a TSV export): A006 (negative time)
    # is excluded and listed
    cfg["acquisition"]["survival"] = {
        "source": "tcdr",
        "tcdr_url": f"{server.url}/data/cdr.tsv",
        "tcdr_format": "tsv",
        "tcdr_md5": hashlib.md5(CDR.read_bytes()).hexdigest(),
    }
    cfg["outdir"] = "results-cdr"
    cfg["clinical"] = "results-cdr/{cohort}/clinical.tsv"
    cfg["omics"] = "results-cdr/{cohort}/omics.tsv"
    (repo / "cdr.yaml").write_text(yaml.safe_dump(cfg))
    target = "results-cdr/tables/cohort_summary.tsv"
    run = snakemake(repo, target, "--configfile", "config/tcga.yaml", "cdr.yaml", "--cores", "1")
    assert run.returncode == 0, run.stderr[-4000:]
    excluded = pd.read_csv(
        repo / "results-cdr/TCGA-BLCA/acquisition/survival_excluded.tsv", sep="\t"
    )
    assert excluded.to_dict("records")[-1] == {
        "case_id": "TCGA-X1-A006",
        "reason": "negative survival time",
    }
    assert list(read_clinical(repo / "results-cdr/TCGA-BLCA/clinical.tsv").index) == [
        "TCGA-X1-A001",
        "TCGA-X1-A002",
    ]


def test_dry_run_plans_the_acquisition_and_the_paper_run(tmp_path: Path) -> None:
    """With a slide sheet, `snakemake -n --configfile config/tcga.yaml` plans everything."""
    repo = copy_repo(tmp_path)
    cases = {
        c: [f"TCGA-{c[-2:]}-A00{i}" for i in range(1, 3)]
        for c in ("TCGA-BLCA", "TCGA-LUAD", "TCGA-UCEC")
    }
    sheet = write_sheet(repo / "resources/tcga/slides.tsv", cases)
    proc = snakemake(repo, "-n", "--configfile", "config/tcga.yaml", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    for rule in ("download_cbioportal_study", "unpack_cbioportal_study", "tcga_cohort_tables"):
        assert counts[rule] == 3, rule
    # the shipped config takes survival from the TCGA-CDR (one table for all cancers)
    assert counts["cohort_summary"] == 1 and counts["download_tcga_cdr"] == 1
    assert counts["download_encoder_weights"] == 1  # features.weights_url in config/tcga.yaml
    assert counts["download_slide"] == counts["tile_slide"] == len(sheet)
    # one extraction rule: a batch per cohort (2 slides each), each slide's file published
    assert counts["extract_features"] == 3 and counts["slide_features"] == len(sheet)
    config = yaml.safe_load((repo / "config" / "tcga.yaml").read_text())
    n_folds = config["splits"]["n_folds"]
    seeds = config["training"]["seeds"]
    assert len(seeds) == 3  # one train job per cohort x model x fold x seed
    assert counts["train"] == 3 * len(config["training"]["models"]) * n_folds * len(seeds)
    assert counts["omics_bags"] == counts["splits"] == counts["case_bags"] == 3
    assert counts["cindex_table"] == counts["paper_tables"] == counts["run_summary"] == 1
    assert "gdc_slide_manifest" not in counts  # the sheet pins the slides

    (repo / "cbio.yaml").write_text(
        yaml.safe_dump({"acquisition": {"survival": {"source": "cbioportal"}}})
    )
    proc = snakemake(
        repo, "-n", "--configfile", "config/tcga.yaml", "cbio.yaml", "--quiet", "rules"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "download_tcga_cdr" not in _job_counts(proc.stdout + proc.stderr)


def test_cohort_without_a_study_stops_the_parse(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path)
    # a TCGA project gets its study derived; a cohort of another name must be given one
    cfg = {"cohorts": ["TCGA-KIRC", "MY-COHORT"], "omics": "results-tcga/omics.tsv"}
    (repo / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(repo, "-n", "--configfile", "config/tcga.yaml", "bad.yaml")
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "acquisition.omics.studies has no cBioPortal study for cohort(s) ['MY-COHORT']" in err
    assert "config key `omics` ('results-tcga/omics.tsv') must contain {cohort}" in err


def test_pan_cancer_config_plans_every_project_from_project_ids_alone(tmp_path: Path) -> None:
    """config/tcga_pancancer.yaml on a 33-project sheet: studies derived, one job set per cohort."""
    from mmsurv.tcga_projects import NO_DIAGNOSTIC_SLIDES, TCGA_PROJECTS

    repo = copy_repo(tmp_path)
    cases = {p: [f"TCGA-{i:02d}-{p[5:]:0>4}"[:12] for i in (1, 2)] for p in TCGA_PROJECTS}
    write_sheet(repo / "resources/tcga/slides_pancancer.tsv", cases)
    configs = ("--configfile", "config/tcga.yaml", "config/tcga_pancancer.yaml")
    proc = snakemake(repo, "-n", *configs, "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    pancancer = yaml.safe_load((repo / "config/tcga_pancancer.yaml").read_text())
    cohorts = pancancer["cohorts"]
    assert sorted(cohorts) == sorted(set(TCGA_PROJECTS) - NO_DIAGNOSTIC_SLIDES)  # 32
    assert counts["tcga_cohort_tables"] == counts["splits"] == len(cohorts)
    # one archive per study: COAD and READ share cBioPortal's coadread study
    assert counts["download_cbioportal_study"] == len(cohorts) - 1
    assert counts["download_tcga_cdr"] == 1
    assert counts["download_slide"] == 2 * len(cohorts)  # LAML's sheet rows are not planned
    training = yaml.safe_load((repo / "config/tcga.yaml").read_text())["training"]
    n_runs = len(training["models"]) * 5 * len(training["seeds"])  # folds x seeds
    assert counts["train"] == len(cohorts) * n_runs
    log = proc.stdout + proc.stderr
    assert (
        "acquisition.omics.studies.TCGA-READ" in log and "coadread_tcga_pan_can_atlas_2018" in log
    )
    assert "derived: the PanCancer Atlas study of GDC project TCGA-READ" in log
