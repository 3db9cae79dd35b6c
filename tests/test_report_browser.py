"""A Snakemake report opened in a real headless browser lists every result it should.

Builds a toy workflow in a temporary directory (two categories, one with two subcategories,
Jinja captions), runs it and ``snakemake --report``, then drives Chromium through the rendered
report with :func:`report_check.check_report`. Without chromium/chromedriver/selenium the test
is skipped locally and fails in CI (CI installs them: .ci/run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from report_check import ReportCheckError, browser_available, check_report

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

SNAKEFILE = textwrap.dedent(
    """
    configfile: "config.yaml"
    report: "report/workflow.rst"

    rule all:
        input:
            "out/table_a.md",
            "out/table_b.csv",
            "out/figure.svg",

    rule tables:
        output:
            a=report("out/table_a.md", caption="report/table.rst", category="Tables",
                     subcategory="Table A"),
            b=report("out/table_b.csv", caption="report/table.rst", category="Tables",
                     subcategory="Table B"),
            prov="out/provenance.rst",
        shell:
            "printf '| a |\\\\n|---|\\\\n| 1 |\\\\n' > {output.a}; "
            "printf 'x,y\\\\n1,2\\\\n' > {output.b}; "
            "printf '*Read from the data:* weights ``random-init``.\\\\n' > {output.prov}"

    rule figure:
        output:
            report("out/figure.svg", caption="report/figure.rst", category="Figures"),
        shell:
            "printf '<svg xmlns=\\"http://www.w3.org/2000/svg\\" width=\\"10\\" "
            "height=\\"10\\"><rect width=\\"10\\" height=\\"10\\"/></svg>' > {output}"
    """
)


def _run(args: list[str], cwd: Path) -> None:
    """Run snakemake in ``cwd``; fail the test with its output if it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"snakemake {args} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def toy_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the toy workflow's HTML report once for this module (~20 s)."""
    ok, missing = browser_available()
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test, but these are missing: {missing}")
        pytest.skip(f"no headless browser here ({missing}); CI installs it")
    root = tmp_path_factory.mktemp("toy_report")
    (root / "Snakefile").write_text(SNAKEFILE)
    (root / "config.yaml").write_text("data_source: toy-source\nn_folds: 3\n")
    (root / "report").mkdir()
    (root / "report" / "workflow.rst").write_text(
        "Toy workflow on {{ snakemake.config['data_source'] }}.\n"
    )
    (root / "report" / "table.rst").write_text(
        "A toy table, data source ``{{ snakemake.config['data_source'] }}``, "
        "{{ snakemake.config['n_folds'] }} folds.\n\n"
        ".. include:: {{ snakemake.output.prov }}\n"
    )
    (root / "report" / "figure.rst").write_text("A toy figure.\n")
    _run(["--cores", "1", "--quiet"], root)
    _run(["--report", "report.html"], root)
    return root / "report.html"


def test_rendered_report_lists_every_result(toy_report: Path) -> None:
    shot = ARTIFACTS / "report_browser_toy.png"
    shot.unlink(missing_ok=True)
    found = check_report(
        toy_report,
        ["table_a.md", "table_b.csv", "figure.svg"],
        shot,
        caption_contains={"table_a.md": ["data source toy-source", "3 folds", "random-init"]},
    )
    assert found == {
        "table_a.md": "Tables/Table A",
        "table_b.csv": "Tables/Table B",
        "figure.svg": "Figures",
    }
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 5_000


def test_missing_result_or_caption_text_fails(toy_report: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportCheckError, match=r"does not list \['table_c.md'\]"):
        check_report(toy_report, ["table_a.md", "table_c.md"], tmp_path / "shot.png")
    assert (tmp_path / "shot.png").exists()  # a failed check still leaves its screenshot
    with pytest.raises(ReportCheckError, match="caption of table_b.csv lacks"):
        check_report(
            toy_report,
            ["table_b.csv"],
            tmp_path / "shot2.png",
            caption_contains={"table_b.csv": ["data source somewhere-else"]},
        )
    with pytest.raises(ReportCheckError, match="does not exist"):
        check_report(tmp_path / "absent.html", ["x"], tmp_path / "shot3.png")
