"""The workflow as a user runs it: config validation, the demo DAG, a full demo run."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from mmsurv.io import SheetError, read_slide_sheet

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
ARTIFACTS = REPO / "test-artifacts"


def _env() -> dict[str, str]:
    """The test's environment with this interpreter's bin first, as an activated venv has."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def copy_repo(dest: Path) -> Path:
    """Copy the tracked workflow files (not results/) to `dest`, as a fresh clone would have."""
    for name in [
        "Snakefile",
        "config",
        "workflow",
        "scripts",
        "resources",
        "profiles",
        "envs",
        ".test",
    ]:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def snakemake(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run snakemake in `cwd` and return the finished process (output captured)."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("name", ["config.yaml", "tcga.yaml"])
def test_shipped_configs_are_schema_valid(name: str) -> None:
    config = yaml.safe_load((REPO / "config" / name).read_text())
    validate(config, str(SCHEMA))


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"trainig": {"epochs": 3}}, "trainig"),
        ({"training": {"epochs": "twenty", "models": ["snn"]}}, "epochs"),
        ({"tiling": {"patch_size": 256, "colour": "red"}}, "colour"),
        ({"training": {"models": ["resnet"]}}, "resnet"),
    ],
)
def test_bad_config_stops_the_run_naming_the_key(tmp_path: Path, patch: dict, key: str) -> None:
    repo = copy_repo(tmp_path)
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    for top, value in patch.items():
        if isinstance(config.get(top), dict) and isinstance(value, dict):
            config[top] = {**config[top], **value}
        else:
            config[top] = value
    (repo / "bad.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(repo, "-n", "--configfile", "bad.yaml", timeout=300)
    assert proc.returncode != 0
    assert key in proc.stdout + proc.stderr


def test_sheet_errors_name_the_file_and_ids(tmp_path: Path) -> None:
    sheet = tmp_path / "slides.tsv"
    sheet.write_text("cohort\tcase_id\tslide_id\tpath\nA\tc1\ts1\tx.svs\nA\tc2\ts1\ty.svs\n")
    with pytest.raises(SheetError, match=r"slides\.tsv: duplicated slide_id\(s\) \['s1'\]"):
        read_slide_sheet(sheet, ["A"])
    sheet.write_text("cohort\tcase_id\tslide_id\tpath\nA\tc1\ts1\tx.svs\n")
    with pytest.raises(SheetError, match=r"no slide for configured cohort\(s\) \['B'\]"):
        read_slide_sheet(sheet, ["A", "B"])
    sheet.write_text("cohort\tcase\tslide_id\tpath\nA\tc1\ts1\tx.svs\n")
    with pytest.raises(SheetError, match=r"lacks column\(s\) \['case_id'\]"):
        read_slide_sheet(sheet, ["A"])
    with pytest.raises(SheetError, match="does not exist"):
        read_slide_sheet(tmp_path / "nope.tsv", ["A"])


def test_demo_dag_dry_run_has_one_job_per_cancer_model_fold(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path)
    proc = snakemake(repo, "-n", "--cores", "2", "--quiet", "rules", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    sheet = pd.read_csv(repo / config["samples"], sep="\t")
    n_cohorts = len(config["cohorts"])
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts["train"] == n_cohorts * len(config["training"]["models"]) * 5
    assert counts["tile_slide"] == len(sheet)
    per_job = config["features"]["slides_per_job"]
    batches = sum(-(-n // per_job) for n in sheet.groupby("cohort").size())
    # one extraction rule, one job per batch; one job per slide publishes its feature file
    assert counts["extract_features"] == batches and counts["slide_features"] == len(sheet)
    assert not [r for r in counts if r.startswith("extract_features_")]
    assert counts["km_figure"] == n_cohorts == counts["qc_sheet"]
    assert counts["demo_cohort"] == 1 and counts["cindex_table"] == 1


def _job_counts(text: str) -> dict[str, int]:
    """Parse Snakemake's 'job count' table into {rule: count}."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.slow
def test_demo_runs_end_to_end_with_report(tmp_path: Path) -> None:
    """The README's first command on the shipped demo config: table, KM figures, report."""
    repo = copy_repo(tmp_path)
    proc = snakemake(repo, "--cores", "2", timeout=3600)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "demo_snakemake.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-5000:]
    results = repo / "results"
    table = pd.read_csv(results / "tables" / "cindex.csv")
    assert len(table) > 0 and table["mean"].map(math.isfinite).all()
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    cohorts, models = config["cohorts"], config["training"]["models"]
    # every cohort x model x fold has predictions; both paper tables list every model
    assert set(table["model"]) == set(models) and set(table["cohort"]) == set(cohorts)
    assert (table["n_folds"] == config["splits"]["n_folds"]).all()
    t1 = (results / "tables" / "table1_comparison.md").read_text()
    t2 = (results / "tables" / "table2_ablation.md").read_text()
    from mmsurv.evaluate.paper_tables import DISPLAY_NAMES

    ablations = {"ours_wo_simme", "ours_wo_bdca", "ours_wo_ot"}
    for model in models:
        assert DISPLAY_NAMES[model] in (t2 if model in ablations else t1), model
    md = (results / "tables" / "cindex.md").read_text()
    assert "random-init" in md
    for cohort in ["DEMO-BLCA", "DEMO-LUAD", "DEMO-UCEC"]:
        assert (results / "figures" / f"km_{cohort}.png").stat().st_size > 10_000
    feature_log = next((results / "logs" / "features").rglob("batch*.log")).read_text()
    assert "random" in feature_log.lower()
    proc = snakemake(repo, "--report", "results/report.html", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (results / "report.html").stat().st_size > 100_000
    from report_check import check_report  # tests/ is on sys.path (pytest rootdir import mode)

    names = [
        f"{s}.{e}" for s in ("table1_comparison", "table2_ablation") for e in ("csv", "md", "tex")
    ]
    names += ["metrics.csv", "metrics.md", "cindex.csv", "cindex.md", "run_summary.md"]
    names += [f"km_{c}.png" for c in cohorts] + [f"qc_{c}.jpg" for c in cohorts]
    check_report(
        results / "report.html",
        names,
        ARTIFACTS / "report_demo.png",
        caption_contains={"table1_comparison.md": ["random-init", "last_epoch"]},
    )
    # Heatmaps and gene-family attributions (issue 16): every configured model x cohort, the
    # chosen cases' CLAM-style h5 next to their coords, one PDF page per case.
    import h5py

    from mmsurv.demo.regions import attention_in_regions

    hm, at = config["heatmaps"], config["attribution"]
    regions = []
    for cohort in cohorts:
        for model in hm["models"]:
            base = results / cohort / "heatmaps" / model
            cases = pd.read_csv(base / "cases.tsv", sep="\t")
            assert len(cases) == hm["n_high"] + hm["n_low"], (cohort, model)
            assert len(list((base / "figures").glob("*.png"))) == len(cases)
            for h5_path in (base / "slides").glob("*.h5"):
                with h5py.File(h5_path) as h5:
                    assert h5["coords"].shape == (h5["attention"].shape[0], 2), h5_path
            got = attention_in_regions(base / "slides", results / "demo_data" / cohort / "regions")
            regions.append({"cohort": cohort, "model": model, **got})
            if model == "attn_mil":
                # The risk lives only in the planted regions: a model that learned it attends
                # there (on z-scored patch features, training.path_norm; raw ones gave ~0.8x).
                assert got["inside_rel"] > got["outside_rel"], (cohort, got)
        for model in at["models"]:
            fams = pd.read_csv(results / cohort / "attribution" / model / "families.tsv", sep="\t")
            assert len(fams) == 6, (cohort, model)
    pd.DataFrame(regions).to_csv(ARTIFACTS / "demo_attention_in_regions.tsv", sep="\t")
    shutil.copytree(
        results / cohorts[0] / "heatmaps", ARTIFACTS / "demo_heatmaps", dirs_exist_ok=True
    )
    for name in [
        "cindex.md",
        "cindex_folds.tsv",
        "run_summary.md",
        "table1_comparison.md",
        "table2_ablation.md",
        "metrics.md",
    ]:
        src = next(results.rglob(name))
        shutil.copy2(src, ARTIFACTS / f"demo_{name}")
    shutil.copytree(results / "figures", ARTIFACTS / "demo_figures", dirs_exist_ok=True)
    # Wall seconds per job from Snakemake's benchmark files, summed by stage (and model for
    # training), to keep the demo's cost per model in view.
    rows = []
    for f in sorted((results / "benchmarks").rglob("*.tsv")):
        parts = f.relative_to(results / "benchmarks").parts
        stage = "/".join(
            (parts[0].removesuffix(".tsv"),) + (parts[2:3] if parts[0] == "train" else ())
        )
        rows.append({"stage": stage, "s": float(pd.read_csv(f, sep="\t")["s"].iloc[0])})
    times = pd.DataFrame(rows).groupby("stage")["s"].agg(["count", "mean", "sum"])
    times.to_csv(ARTIFACTS / "demo_job_seconds.tsv", sep="\t")
