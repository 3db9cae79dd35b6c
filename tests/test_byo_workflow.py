"""Bring-your-own data through the workflow: MCAT-style tables in, the same DAG as a download."""

from __future__ import annotations

import copy
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate
from test_workflow import REPO, SCHEMA, _env, _job_counts, copy_repo, snakemake

from mmsurv.acquire.byo import write_example

COHORT = "BYO-BLCA"
SHIPPED = REPO / ".test" / "config_byo"
DOC = REPO / "docs" / "byo.md"
N_FOLDS = 3  # the shipped config has 5; 3 keeps this run to 6 training jobs


@pytest.fixture
def byo_repo(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A copy of the repository and an MCAT-style cohort generated outside it."""
    data = write_example(tmp_path / "mcat", cohort=COHORT, n_cases=30, n_folds=N_FOLDS, seed=7)
    (tmp_path / "repo").mkdir()
    return copy_repo(tmp_path / "repo"), data


def write_config(
    repo: Path,
    data: dict[str, Path],
    *,
    models: list[str],
    slide_dir: Path | None = None,
    **byo: str,
) -> str:
    """The shipped .test/config_byo config pointed at `data`; returns its name in `repo`."""
    config = yaml.safe_load((SHIPPED / "config.yaml").read_text())
    config["byo"] = {
        "tables": {COHORT: str(data["table"])},
        "slide_dir": None if slide_dir is None else str(slide_dir),
        "splits_dir": str(data["splits_dir"]).replace(COHORT, "{cohort}"),
        **byo,
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
                out / COHORT / "train" / model / "seed1" / f"fold{k}" / "predictions.parquet"
            )
            assert set(pred["case_id"]) == val, (model, k)
    log = (out / "logs" / "bags" / f"{COHORT}_splits.log").read_text()
    assert "modalities required: survival, omics (no configured model uses pathology" in log
    assert "folds from the user's split CSVs" in log

    table = pd.read_csv(out / "tables" / "cindex.csv")
    assert set(table["model"]) == {"snn", "snn_trans"}
    assert table["mean"].map(math.isfinite).all()
    md = (out / "tables" / "cindex.md").read_text()
    assert f"mean ± sample std (ddof=1) over {N_FOLDS} folds x 1 seed = {N_FOLDS} runs\n" in md
    assert not (out / "byo" / "slides.tsv").exists()  # genomics only: no slide sheet needed
    assert not (out / COHORT / "patches").exists() and not (out / COHORT / "bags.h5").exists()

    # One more model and one more seed: only their jobs are planned, the finished ones are kept
    # (a train job's params are its model's, not the whole training section).
    write_config(repo, data, models=["snn", "snn_trans", "cox_clinical"])
    config = yaml.safe_load((repo / configfile).read_text())
    config["training"]["seeds"] = [1, 2]
    (repo / configfile).write_text(yaml.safe_dump(config))
    dry = snakemake(repo, target, "-n", "--cores", "2", "--configfile", configfile)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-5000:]
    planned = [
        dict(kv.split("=", 1) for kv in line.split(":", 1)[1].strip().split(", "))
        for line in (dry.stdout + dry.stderr).splitlines()
        if line.strip().startswith("wildcards:") and "model=" in line and "fold=" in line
    ]
    assert len(planned) == 4 * N_FOLDS  # snn, snn_trans seed 2; cox_clinical seeds 1 and 2
    assert all(j["seed"] == "2" or j["model"] == "cox_clinical" for j in planned), planned


def test_unsuffixed_gene_columns_follow_byo_unsuffixed(byo_repo) -> None:
    """Mutation calls without `_mut`: byo_tables stops by default and reads them with `mut`."""
    repo, data = byo_repo
    table = pd.read_csv(data["table"], index_col=0)
    table["KRAS"] = table["TP53_mut"]  # gene-like, numeric, no suffix
    table["NRAS"] = 1 - table["TP53_mut"]
    table.to_csv(data["table"])
    omics = "results/byo-ci/byo/BYO-BLCA/omics.tsv"

    proc = snakemake(
        repo, omics, "--cores", "1", "--configfile", write_config(repo, data, models=["snn"])
    )
    text = proc.stdout + proc.stderr
    log = (repo / "results" / "byo-ci" / "logs" / "byo" / f"{COHORT}_tables.log").read_text()
    assert proc.returncode != 0, text[-3000:]
    assert f"{data['table']} (cohort {COHORT}): 2 column(s) look like genes" in log
    assert "['KRAS', 'NRAS']" in log and "byo.unsuffixed: mut" in log

    configfile = write_config(repo, data, models=["snn"], unsuffixed="mut")
    proc = snakemake(repo, omics, "--cores", "1", "--configfile", configfile)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    columns = pd.read_csv(repo / omics, sep="\t").columns
    assert {"KRAS_mut", "NRAS_mut"} <= set(columns)


def test_path_model_without_slides_fails_naming_the_cohort(byo_repo) -> None:
    repo, data = byo_repo
    configfile = write_config(repo, data, models=["snn", "attn_mil"])
    proc = snakemake(repo, "-n", "--configfile", configfile, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"cohort(s) ['{COHORT}'] have no slides: models ['attn_mil'] use pathology" in text
    assert "byo.slide_dir is null" in text


def test_slide_sheet_is_a_checkpoint_then_the_full_dag(byo_repo) -> None:
    """byo.slide_dir set: `samples` comes from a checkpoint; then tiling per found slide."""
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
    # before the sheet: the checkpoint and every job that needs no slide list; the per-slide
    # jobs are planned once the checkpoint has run (same invocation)
    assert counts["byo_slide_sheet"] == counts["slide_sheet"] == 1
    assert counts["train"] == 2 * N_FOLDS
    assert counts["case_bags"] == 1 and "tile_slide" not in counts
    assert "checkpoint jobs" in proc.stdout + proc.stderr

    sheet_path = "results/byo-ci/byo/slides.tsv"  # the slide files are empty: write the sheet only
    proc = snakemake(repo, sheet_path, "--cores", "1", "--configfile", configfile, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sheet = pd.read_csv(repo / "results" / "byo-ci" / "byo" / "slides.tsv", sep="\t")
    assert len(sheet) == len(found) and set(sheet["cohort"]) == {COHORT}

    proc = snakemake(repo, "-n", "--configfile", configfile, "--quiet", "rules", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts["tile_slide"] == len(found) and counts["case_bags"] == 1
    assert counts["byo_tables"] == 1 and counts["train"] == 2 * N_FOLDS
    assert "byo_slide_sheet" not in counts


# --------------------------------------------------------------------------- docs/byo.md
def doc_blocks(lang: str) -> list[str]:
    """The fenced ```lang code blocks of docs/byo.md, in order."""
    return re.findall(rf"^```{lang}\n(.*?)^```$", DOC.read_text(), flags=re.M | re.S)


def doc_commands(block: str) -> list[list[str]]:
    """The commands of a bash block as argument lists: comments dropped, `\\` lines joined."""
    lines = block.replace("\\\n", " ").splitlines()
    return [argv for argv in (shlex.split(line, comments=True) for line in lines) if argv]


def test_docs_example_runs_as_written(tmp_path: Path) -> None:
    """docs/byo.md's example commands and config as written (Snakemake as a dry run)."""
    blocks = doc_blocks("bash")
    example = [b for b in blocks if "mmsurv.acquire.byo example" in b]
    assert len(example) == 1, "docs/byo.md: one bash block runs the example"
    templates = [b for b in blocks if b not in example]
    assert all("my.yaml" in b for b in templates), "other bash blocks are about the user's my.yaml"
    (config_text,) = doc_blocks("yaml")  # the example's config, the page's only YAML
    config = yaml.safe_load(config_text)
    validate(
        copy.deepcopy(config), str(SCHEMA)
    )  # complete on its own: schema defaults for the rest
    assert config["evaluation"]["km_model"] in config["training"]["models"]

    (tmp_path / "repo").mkdir()
    repo = copy_repo(tmp_path / "repo")
    dry_runs = []
    for argv in doc_commands(example[0]):
        if argv[0] == "python":
            proc = subprocess.run(
                [sys.executable, *argv[1:]], cwd=repo, env=_env(), capture_output=True, text=True
            )
            assert proc.returncode == 0, (argv, proc.stderr[-3000:])
        else:
            assert argv[0] == "snakemake", argv
            (repo / argv[argv.index("--configfile") + 1]).write_text(config_text)
            dry_runs.append(argv[1:])
    assert dry_runs, "the example block runs Snakemake"

    demo_config = (repo / "config" / "config.yaml").read_text()
    for underneath in (demo_config, config_text):  # config/config.yaml = the demo, then nothing
        (repo / "config" / "config.yaml").write_text(underneath)
        for args in dry_runs:
            proc = snakemake(repo, *args, "-n", timeout=300)
            assert proc.returncode == 0, (args, (proc.stdout + proc.stderr)[-5000:])
            counts = _job_counts(proc.stdout + proc.stderr)
            n_train = config["splits"]["n_folds"] * len(config["training"]["models"])
            assert counts["byo_tables"] == 1 and counts["train"] == n_train, counts
            assert "tile_slide" not in counts and "byo_slide_sheet" not in counts
