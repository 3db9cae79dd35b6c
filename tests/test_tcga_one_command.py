"""One command from nothing to tables (issue 17.3): the slide sheet, then a Snakemake checkpoint.

A local imitation of the GDC (tests/test_gdc.py FakeGDC) serves a tiny TCGA cohort: its slide
listing, ten small synthetic Aperio slides and a cBioPortal-style study archive made here (RSEM,
GISTIC and patient files of the same ten cases). No slide sheet exists at the start.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_gdc import FakeGDC, make_hit  # tests/ is on sys.path (pytest rootdir import mode)
from test_tcga_workflow import write_sheet
from test_workflow import _job_counts, copy_repo, snakemake

from mmsurv.demo.cohort import render_tissue
from mmsurv.demo.synth import write_svs

COHORT = "TCGA-BLCA"
STUDY = "tiny_tcga_pan_can_atlas_2018"
CASES = [f"TCGA-X{1 + i % 3}-A{i:03d}" for i in range(1, 11)]
GENES_PER_FAMILY = 3
REPO = Path(__file__).resolve().parents[1]

# cBioPortal's patient file: four `#` lines, then the header (as tests/fixtures/tcga/cbioportal/)
PATIENT_HEADER = [
    "#Patient Identifier\tOverall Survival Status\tOverall Survival (Months)",
    "#Identifier to uniquely specify a patient.\tOverall patient survival status.\tMonths",
    "#STRING\tSTRING\tNUMBER",
    "#1\t1\t1",
    "PATIENT_ID\tOS_STATUS\tOS_MONTHS",
]


def _family_genes() -> list[str]:
    """The first genes of each family of resources/gene_families.csv."""
    families = pd.read_csv(REPO / "resources" / "gene_families.csv")
    return sorted({g for col in families for g in families[col].dropna()[:GENES_PER_FAMILY]})


def study_archive() -> bytes:
    """A cBioPortal PanCancer Atlas-style archive of the ten cases (RSEM, GISTIC, survival)."""
    rng = np.random.default_rng(7)
    genes = _family_genes()
    samples = [f"{c}-01" for c in CASES]
    rsem = pd.DataFrame(rng.gamma(2.0, 300.0, (len(genes), len(samples))), columns=samples)
    cna = pd.DataFrame(rng.integers(-2, 3, (len(genes), len(samples))), columns=samples)
    files = {}
    for name, table in (("data_mrna_seq_v2_rsem.txt", rsem), ("data_cna.txt", cna)):
        table.insert(0, "Entrez_Gene_Id", range(1, len(genes) + 1))
        table.insert(0, "Hugo_Symbol", genes)
        files[name] = table.to_csv(sep="\t", index=False)
    rows = [
        f"{case}\t{'1:DECEASED' if i % 3 != 2 else '0:LIVING'}\t{5.0 + 4.5 * i:.2f}"
        for i, case in enumerate(CASES)
    ]
    files["data_clinical_patient.txt"] = "\n".join(PATIENT_HEADER + rows) + "\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{STUDY}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def serve_cohort(fake: FakeGDC, tmp: Path) -> None:
    """Put the study archive and one small 20x slide per case on the fake GDC."""
    fake.files[f"{STUDY}.tar.gz"] = study_archive()
    for i, case in enumerate(CASES):
        rgb, _ = render_tissue(np.random.default_rng(i), i / len(CASES), width=1024, height=768)
        path = tmp / f"{case}.svs"
        write_svs(path, rgb, mpp=0.5, app_mag=20, downsamples=(1, 2))
        data = path.read_bytes()
        fid = str(uuid.UUID(hashlib.md5(case.encode()).hexdigest()))
        fake.files[fid] = data
        fake.hits.append(
            {
                **make_hit(i, COHORT),
                "id": fid,
                "file_id": fid,
                "file_name": f"{case}-01Z-00-DX1.{fid.upper()}.svs",
                "file_size": len(data),
                "md5sum": hashlib.md5(data).hexdigest(),
                "cases": [{"submitter_id": case, "project": {"project_id": COHORT}}],
            }
        )


def tiny_config(fake: FakeGDC) -> dict:
    """config/tcga.yaml cut to the tiny cohort: 2 models, 2 folds, 1 epoch, CPU, 1 thread a job."""
    stages = ("default", "demo", "tiling", "features", "bags", "train", "evaluate", "download")
    return {
        "cohorts": [COHORT],
        "download": {**fake.download_cfg, "slide_dir": "slides", "chunk_kb": 64},
        "acquisition": {
            "omics": {
                "studies": {COHORT: STUDY},
                "archive_url": f"{fake.url}/data/{{study}}.tar.gz",
                "mutations": False,
            },
            "survival": {"source": "cbioportal"},
        },
        "tiling": {"segmentation": {"a_t": 1.0, "a_h": 1.0}},  # the slides are smaller than a_t
        # 3 extraction batches, so that the batches too come from the sheet the checkpoint wrote
        "features": {
            "weights": None,
            "weights_url": None,
            "device": "cpu",
            "num_workers": 0,
            "batch_size": 16,
            "slides_per_job": 4,
        },
        "splits": {"n_folds": 2, "source": "make"},
        "training": {
            "models": ["snn", "attn_mil"],
            "epochs": 1,
            "device": "cpu",
            "grad_accum": 2,
            "n_bins": 2,
            "max_patches": 64,
        },
        # published: false, as config/tcga.yaml's published_cohorts names the other two cancers
        "evaluation": {
            "km_model": "snn",
            "published": False,
            "n_perm": 20,
            "n_bootstrap": 20,
            "ibs_points": 10,
        },
        "resources": {s: {"threads": 1, "mem_mb": 1000, "runtime": 20, "gpu": 0} for s in stages},
    }


@pytest.fixture
def fake() -> Iterator[FakeGDC]:
    server = FakeGDC()
    yield server
    server.close()


def test_dry_run_without_a_sheet_plans_up_to_the_checkpoint(tmp_path: Path) -> None:
    """No sheet: the listing, the checkpoint and every job that needs no slide list; `manifest`."""
    repo = copy_repo(tmp_path)
    assert not (repo / "resources/tcga/slides.tsv").exists()
    proc = snakemake(repo, "-n", "--configfile", "config/tcga.yaml", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    counts = _job_counts(text)
    config = yaml.safe_load((repo / "config" / "tcga.yaml").read_text())
    n_cohorts = len(config["cohorts"])
    assert counts["gdc_slide_manifest"] == n_cohorts and counts["gdc_slide_sheet"] == 1
    assert counts["slide_sheet"] == 1  # the checkpoint after the sheet
    assert "checkpoint jobs" in text  # Snakemake: the DAG will grow once the checkpoint has run
    # the per-slide jobs wait for the sheet; the omics, survival, folds and training do not
    for rule in ("download_slide", "tile_slide", "extract_features", "slide_features"):
        assert rule not in counts, rule
    assert counts["tcga_cohort_tables"] == counts["case_bags"] == counts["splits"] == n_cohorts
    n_train = n_cohorts * len(config["training"]["models"]) * config["splits"]["n_folds"]
    n_train *= len(config["training"]["seeds"])  # one job per fold x seed
    assert counts["train"] == n_train and counts["cindex_table"] == 1

    # `manifest` stays a target of its own: the listing and the sheet, nothing else
    proc = snakemake(repo, "manifest", "-n", "--configfile", "config/tcga.yaml", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts.pop("total") == n_cohorts + 2
    assert counts == {"gdc_slide_manifest": n_cohorts, "gdc_slide_sheet": 1, "manifest": 1}

    # with a sheet, the plan is the whole run and the checkpoint is not in it; forcing the GDC
    # listing plans up to the checkpoint again, so the slides come from the rewritten sheet
    cases = {c: [f"TCGA-{c[-2:]}-A00{i}" for i in (1, 2)] for c in config["cohorts"]}
    sheet = write_sheet(repo / "resources/tcga/slides.tsv", cases)
    proc = snakemake(repo, "-n", "--configfile", "config/tcga.yaml", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts["download_slide"] == counts["tile_slide"] == len(sheet)
    assert not {"slide_sheet", "gdc_slide_sheet", "gdc_slide_manifest"} & set(counts)
    refresh = ("--forcerun", "gdc_slide_manifest")
    proc = snakemake(repo, "-n", "--configfile", "config/tcga.yaml", *refresh, "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts["gdc_slide_manifest"] == n_cohorts and counts["slide_sheet"] == 1
    assert "download_slide" not in counts and "tile_slide" not in counts


@pytest.mark.slow
def test_one_command_from_nothing_to_tables(fake: FakeGDC, tmp_path: Path) -> None:
    """One `snakemake` invocation: GDC listing -> sheet (checkpoint) -> downloads ... -> tables."""
    (tmp_path / "repo").mkdir()
    repo = copy_repo(tmp_path / "repo")
    serve_cohort(fake, tmp_path)
    (repo / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(fake)))
    configs = ("--configfile", "config/tcga.yaml", "tiny.yaml")
    sheet_path = repo / "resources/tcga/slides.tsv"
    assert not sheet_path.exists()

    proc = snakemake(repo, *configs, "--cores", "2", timeout=900)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-5000:]
    assert "Updating checkpoint dependencies" in text  # the DAG grew after the sheet, same run
    assert (repo / "results-tcga/manifest/slide_sheet.ready").is_file()  # the checkpoint ran

    sheet = pd.read_csv(sheet_path, sep="\t")
    assert sorted(sheet["case_id"]) == sorted(CASES) and set(sheet["cohort"]) == {COHORT}
    for row in sheet.itertuples():
        assert (repo / row.path).read_bytes() == fake.files[row.file_id]
        assert (repo / f"results-tcga/{COHORT}/features/{row.slide_id}.h5").is_file()
    batches = sorted((repo / f"results-tcga/{COHORT}/features/.batches").iterdir())
    assert [b.name for b in batches] == ["0", "1", "2"]  # 10 slides, 4 per job

    tables = repo / "results-tcga/tables"
    cindex = pd.read_csv(tables / "cindex.csv")
    assert set(cindex["model"]) == {"snn", "attn_mil"} and set(cindex["cohort"]) == {COHORT}
    assert (cindex["n_folds"] == 2).all()
    for name in ("table1_comparison.md", "metrics.csv", "paired.csv", "cohort_summary.tsv"):
        assert (tables / name).is_file(), name
    assert (repo / "results-tcga/run_summary.md").is_file()
    for figure in (f"km_{COHORT}.png", f"qc_{COHORT}.jpg"):
        assert (repo / "results-tcga/figures" / figure).is_file(), figure
    listings = [s for s in fake.seen if s.method == "POST" and s.path == "/files"]

    # a rerun reuses the sheet: no new GDC listing, nothing left to do
    proc = snakemake(repo, "-n", *configs, "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert [s for s in fake.seen if s.method == "POST" and s.path == "/files"] == listings
    assert {"file_id", "md5sum", "file_size"} <= set(sheet.columns)  # it pins the GDC files
