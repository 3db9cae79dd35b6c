"""The DAG's cost does not grow with the sheet: class constraints, one extraction rule."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_tcga_workflow import write_sheet  # tests/ is on sys.path (pytest rootdir import mode)
from test_workflow import _env, _job_counts, copy_repo, snakemake

COHORTS = ("TCGA-BLCA", "TCGA-LUAD", "TCGA-UCEC")
N_CASES = 100  # per cohort: 300 slides

# Parses the workflow as `snakemake` does and prints every rule's output patterns, as regexes
# with the wildcard constraints applied (Snakemake's own `_IOFile.regex()`).
PATTERNS = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings, OutputSettings, ResourceSettings, StorageSettings,
)
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(configfiles=[Path(p) for p in sys.argv[1:]]),
        storage_settings=StorageSettings(),
        snakefile=Path("Snakefile"),
        workdir=Path("."),
    )._workflow
    print("PATTERNS " + json.dumps(
        {r.name: [f.regex().pattern for f in r.output] for r in wf.rules}
    ))
"""


@pytest.fixture(scope="module")
def tcga_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A copy of the repository with a TCGA slide sheet of 300 slides; its slide ids."""
    repo = copy_repo(tmp_path_factory.mktemp("repo"))
    cases = {c: [f"TCGA-{c[-2:]}-{i:04d}" for i in range(N_CASES)] for c in COHORTS}
    sheet = write_sheet(repo / "resources/tcga/slides.tsv", cases)
    return repo, list(sheet["slide_id"])


def test_wildcard_constraints_are_classes_not_slide_ids(tcga_repo: tuple[Path, list[str]]) -> None:
    repo, slides = tcga_repo
    proc = subprocess.run(
        [sys.executable, "-c", PATTERNS, "config/tcga.yaml"],
        cwd=repo,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("PATTERNS "))
    patterns = json.loads(line.removeprefix("PATTERNS "))
    tile = patterns["tile_slide"][0]
    assert "(?P<slide>[A-Za-z0-9._-]+)" in tile and "(?P<cohort>[A-Za-z0-9_-]+)" in tile
    everything = "\n".join(p for ps in patterns.values() for p in ps)
    assert not [s for s in slides if s in everything.replace("\\", "")]
    # no pattern grows with the sheet (the longest, download_slide's, holds a GDC UUID pattern)
    assert max(len(p) for p in everything.splitlines()) < 300


def test_dry_run_of_hundreds_of_slides_has_one_extraction_rule(
    tcga_repo: tuple[Path, list[str]],
) -> None:
    repo, slides = tcga_repo
    proc = snakemake(repo, "--list-rules", "--configfile", "config/tcga.yaml", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rules = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert [r for r in rules if "features" in r] == ["extract_features", "slide_features"]
    proc = snakemake(repo, "-n", "--configfile", "config/tcga.yaml", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    per_job = yaml.safe_load((repo / "config" / "tcga.yaml").read_text())["features"]
    batches = len(COHORTS) * math.ceil(N_CASES / per_job["slides_per_job"])
    assert counts["extract_features"] == batches
    assert counts["slide_features"] == counts["tile_slide"] == len(slides) == 300
    assert not [r for r in counts if r.startswith("extract_features_")]
