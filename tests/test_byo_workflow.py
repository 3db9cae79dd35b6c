"""Bring-your-own data through the workflow: MCAT-style tables in, the same DAG as a download."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import REPO, _job_counts, copy_repo, snakemake

from mmsurv.acquire.byo import write_example

COHORT = "BYO-BLCA"
SHIPPED = REPO / ".test" / "config_byo"
N_FOLDS = 3  # the shipped config has 5; 3 keeps this run to 6 training jobs


@pytest.fixture
def byo_repo(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A copy of the repository and an MCAT-style cohort generated outside it."""
    data = write_example(tmp_path / "mcat", cohort=COHORT, n_cases=30, n_folds=N_FOLDS, seed=7)
    (tmp_path / "repo").mkdir()
    return copy_repo(tmp_path / "repo"), data


def write_config(
    repo: Path, data: dict[str, Path], *, models: list[str], slide_dir: Path | None = None
) -> str:
    """The shipped .test/config_byo config pointed at `data`; returns its name in `repo`."""
    config = yaml.safe_load((SHIPPED / "config.yaml").read_text())
    config["byo"] = {
        "tables": {COHORT: str(data["table"])},
        "slide_dir": None if slide_dir is None else str(slide_dir),
        "splits_dir": str(data["splits_dir"]).replace(COHORT, "{cohort}"),
    }
    config["gene_families"] = str(data["signatures"])
    config["splits"]["n_folds"] = N_FOLDS
    config["training"]["models"] = models
    config["evaluation"]["km_model"] = models[0]
    (repo / "byo.yaml").write_text(yaml.safe_dump(config))
    return "byo.yaml"


def user_val_cases(data: dict[str, Path], k: int) -> set[str]:
    """The `val` case ids of the user's split CSV k."""
    return set(pd.read_csv(data["splits_dir"] / f"splits_{k}.csv")["val"].dropna())


def test_shipped_fixture_is_what_its_generator_writes(tmp_path: Path) -> None:
    paths = write_example(tmp_path, cohort=COHORT)  # the command in the config's header
    shipped = SHIPPED / "mcat"
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(shipped) for p in shipped.rglob("*") if p.is_file())
    regenerate = "regenerate: python -m mmsurv.acquire.byo example --out .test/config_byo/mcat"
    for rel in written:
        assert (tmp_path / rel).read_bytes() == (shipped / rel).read_bytes(), (rel, regenerate)
    assert paths["splits_dir"] == tmp_path / "splits" / COHORT


@pytest.mark.slow  # 6 training jobs: about 1 min on 2 free cores, 2 min on a busy machine
def test_genomics_only_byo_runs_to_the_cindex_table(byo_repo) -> None:
    """No slide anywhere: tables → clinical/omics → user folds → snn, snn_trans → c-index."""
    repo, data = byo_repo
    configfile = write_config(repo, data, models=["snn", "snn_trans"])
    out = repo / "results" / "byo-ci"
    target = "results/byo-ci/tables/cindex.csv"  # before --configfile, which takes several
    proc = snakemake(repo, target, "--cores", "2", "--configfile", configfile)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]

    clinical = pd.read_csv(out / "byo" / COHORT / "clinical.tsv", sep="\t")
    assert len(clinical) == 30 and set(clinical["event"]) <= {0, 1}
    assert (out / "byo" / COHORT / "omics.tsv").is_file()
    report = pd.read_csv(out / COHORT / "gene_family_report.tsv", sep="\t")
    assert report.query("modality == 'rnaseq'")["n_found"].tolist() == [3] * 6

    splits = pd.read_csv(out / COHORT / "splits.tsv", sep="\t")
    for k in range(N_FOLDS):
        val = user_val_cases(data, k)
        assert set(splits.loc[splits["fold"] == k, "case_id"]) == val
        for model in ("snn", "snn_trans"):
            pred = pd.read_parquet(
                out / COHORT / "train" / model / f"fold{k}" / "predictions.parquet"
            )
            assert set(pred["case_id"]) == val, (model, k)
    log = (out / "logs" / "bags" / f"{COHORT}_splits.log").read_text()
    assert "modalities required: survival, omics (no configured model uses pathology" in log
    assert "folds from the user's split CSVs" in log

    table = pd.read_csv(out / "tables" / "cindex.csv")
    assert set(table["model"]) == {"snn", "snn_trans"}
    assert table["mean"].map(math.isfinite).all()
    md = (out / "tables" / "cindex.md").read_text()
    assert f"mean ± sample std (ddof=1) over {N_FOLDS} folds\n" in md  # the user's CSVs
    assert not (out / "byo" / "slides.tsv").exists()  # genomics only: no slide sheet needed
    assert not (out / COHORT / "patches").exists() and not (out / COHORT / "bags.h5").exists()


def test_path_model_without_slides_fails_naming_the_cohort(byo_repo) -> None:
    repo, data = byo_repo
    configfile = write_config(repo, data, models=["snn", "attn_mil"])
    proc = snakemake(repo, "-n", "--configfile", configfile, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"cohort(s) ['{COHORT}'] have no slides: models ['attn_mil'] use pathology" in text
    assert "byo.slide_dir is null" in text


def test_slide_sheet_is_the_first_step_then_the_full_dag(byo_repo) -> None:
    """byo.slide_dir set: the first run writes `samples`; the next plans tiling per found slide."""
    repo, data = byo_repo
    slide_dir = repo / "slides"
    slide_dir.mkdir()
    table = pd.read_csv(data["table"])
    found = table["slide_id"].iloc[:-2]  # the last two slides are absent
    for slide in found:
        (slide_dir / slide).write_bytes(b"")  # dry runs only: the files are never opened
    configfile = write_config(repo, data, models=["snn", "attn_mil"], slide_dir=slide_dir)

    proc = snakemake(repo, "-n", "--configfile", configfile, "--quiet", "rules", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts["byo_slide_sheet"] == 1 and counts["total"] == 2  # the sheet and `all`

    proc = snakemake(repo, "--cores", "1", "--configfile", configfile, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sheet = pd.read_csv(repo / "results" / "byo-ci" / "byo" / "slides.tsv", sep="\t")
    assert len(sheet) == len(found) and set(sheet["cohort"]) == {COHORT}

    proc = snakemake(repo, "-n", "--configfile", configfile, "--quiet", "rules", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts["tile_slide"] == len(found) and counts["case_bags"] == 1
    assert counts["byo_tables"] == 1 and counts["train"] == 2 * N_FOLDS
    assert "byo_slide_sheet" not in counts
