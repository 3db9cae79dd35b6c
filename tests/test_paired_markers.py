"""Table 1/2 § marks: paired Wilcoxon p < 0.05 against the KM model (tables/paired.csv)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmsurv.evaluate.paper_tables import (
    LONG_COLUMNS,
    PAIRED_MARK,
    PAPER_TABLES,
    paired_note,
    paper_table,
    write_paper_table,
)
from mmsurv.evaluate.stage import write_paper_tables

COHORTS = ["TCGA-BLCA", "DEMO-X"]
MODELS = ["snn", "mcat", "ours", "ours_wo_ot"]
# cohort -> model -> (n_runs, p) against the reference "ours"
P_VALUES = {
    "TCGA-BLCA": {"snn": 0.3, "mcat": 0.01, "ours_wo_ot": 0.2},
    "DEMO-X": {"snn": 0.3, "mcat": 0.3, "ours_wo_ot": 0.01},
}
TEX_MARK = r"$^{\S}$"


def _per_fold(n_folds: int = 5, n_seeds: int = 3) -> pd.DataFrame:
    """Per-run c-index of MODELS on COHORTS: n_folds x n_seeds runs each, seeded values."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "cohort": cohort,
            "model": model,
            "fold": fold,
            "seed": seed,
            "cindex": float(rng.uniform(0.5, 0.8)),
            "model_selection": "last_epoch",
            "encoder_weights": "none",
        }
        for cohort in COHORTS
        for model in MODELS
        for fold in range(n_folds)
        for seed in range(n_seeds)
    ]
    return pd.DataFrame(rows)


def _paired(n_runs: int = 15) -> pd.DataFrame:
    """A hand-built tables/paired.csv: every model but the reference against ``ours``."""
    rows = [
        {
            "cohort": cohort,
            "model": model,
            "reference": "ours",
            "n_runs": n_runs,
            "mean_run_delta": -0.01,
            "p_value": p,
            "n_cases": 40,
            "pooled_delta": -0.01,
            "ci_low": -0.05,
            "ci_high": 0.03,
            "ci_level": 0.95,
        }
        for cohort, by_model in P_VALUES.items()
        for model, p in by_model.items()
    ]
    return pd.DataFrame(rows)


def _write(tmp_path: Path, key: str, paired: pd.DataFrame | None, **kw: int) -> dict[str, str]:
    """Write one paper table (paired marks from ``paired``); return csv/md/tex texts."""
    tmp_path.mkdir(exist_ok=True)
    paths = {ext: tmp_path / f"{key}.{ext}" for ext in ("csv", "md", "tex")}
    write_paper_table(
        _per_fold(**kw),
        PAPER_TABLES[key],
        out_csv=paths["csv"],
        out_md=paths["md"],
        out_tex=paths["tex"],
        configured_models=MODELS,
        cohort_order=COHORTS,
        notes=["model selection: last_epoch"],
        paired=paired,
    )
    return {ext: p.read_text() for ext, p in paths.items()}


def _md_cells(md: str, name: str) -> list[str]:
    """The cohort cells of the Markdown row of ``name`` (after Method, and P/G in Table 1)."""
    (row,) = [line for line in md.splitlines() if line.startswith(f"| {name} |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    return cells[-len(COHORTS) :]


def _tex_cells(tex: str, name: str) -> list[str]:
    """The cohort cells of the LaTeX row of ``name``."""
    (row,) = [line for line in tex.splitlines() if line.startswith(f"    {name} & ")]
    return row.removesuffix(r" \\").split(" & ")[-len(COHORTS) :]


def test_marks_only_the_cells_below_alpha(tmp_path: Path) -> None:
    t1 = _write(tmp_path, "table1", _paired())
    assert [PAIRED_MARK in c for c in _md_cells(t1["md"], "MCAT")] == [True, False]
    assert [TEX_MARK in c for c in _tex_cells(t1["tex"], "MCAT")] == [True, False]
    for name in ("SNN", "Ours"):  # p 0.3, and the reference itself
        assert not any(PAIRED_MARK in c for c in _md_cells(t1["md"], name))
        assert not any(TEX_MARK in c for c in _tex_cells(t1["tex"], name))
    t2 = _write(tmp_path, "table2", _paired())
    assert [PAIRED_MARK in c for c in _md_cells(t2["md"], "w/o OT")] == [False, True]
    assert not any(PAIRED_MARK in c for c in _md_cells(t2["md"], "Ours (All components)"))
    note = next(line for line in t1["md"].splitlines() if line.startswith(f"- {PAIRED_MARK}"))
    assert "Ours (ours, evaluation.km_model)" in note
    assert "two-sided Wilcoxon signed-rank test over the 5 folds × 3 seeds = 15 runs" in note
    assert "95% paired-bootstrap CI in tables/paired.md" in note
    assert "cannot" not in note and "can reach" not in note
    assert r"Wilcoxon signed-rank test over the 5 folds $\times$ 3 seeds" in t1["tex"]
    assert r"km\_model) with p $<$ 0.05" in t1["tex"]
    csv = pd.read_csv(tmp_path / "table1.csv")
    assert csv.columns.tolist() == LONG_COLUMNS + [
        "paired_reference",
        "paired_n_runs",
        "paired_p",
        "paired_significant",
    ]
    csv = csv.set_index(["model", "cohort"])
    assert csv.loc[("mcat", "TCGA-BLCA"), "paired_p"] == pytest.approx(0.01)
    assert bool(csv.loc[("mcat", "TCGA-BLCA"), "paired_significant"])
    assert not csv["paired_significant"].drop(("mcat", "TCGA-BLCA")).any()
    assert np.isnan(csv.loc[("ours", "DEMO-X"), "paired_p"])
    assert (csv["paired_reference"] == "ours").all()


def test_five_runs_cannot_reach_alpha(tmp_path: Path) -> None:
    paired = _paired(n_runs=5).assign(p_value=0.0625)  # the smallest exact p with 5 runs
    t1 = _write(tmp_path, "table1", paired, n_seeds=1)
    assert PAIRED_MARK not in "".join(_md_cells(t1["md"], n)[0] for n in ("SNN", "MCAT", "Ours"))
    note = next(line for line in t1["md"].splitlines() if line.startswith(f"- {PAIRED_MARK}"))
    assert "over the 5 folds × 1 seed = 5 runs" in note
    assert "with 5 runs no difference can reach p < 0.05" in note
    assert "repeated seeds are needed" in note


def test_note_names_short_cohorts_and_no_reached_difference() -> None:
    paired = _paired().assign(p_value=0.3)
    paired.loc[paired["cohort"] == "DEMO-X", "n_runs"] = 4
    long = paper_table(
        _per_fold(),
        PAPER_TABLES["table1"],
        configured_models=MODELS,
        cohort_order=COHORTS,
        paired=paired,
    )
    (note,) = paired_note(long, PAPER_TABLES["table1"])
    assert "(4–15 per cohort)" in note and "in DEMO-X (≤ 4 runs) no difference can reach" in note
    (note,) = paired_note(
        paper_table(
            _per_fold(),
            PAPER_TABLES["table1"],
            configured_models=MODELS,
            cohort_order=COHORTS,
            paired=_paired().assign(p_value=0.3),
        ),
        PAPER_TABLES["table1"],
    )
    assert note.endswith("; no difference reaches p < 0.05")


def test_without_paired_input_nothing_changes(tmp_path: Path) -> None:
    plain = _write(tmp_path / "a", "table1", None)
    (tmp_path / "b").mkdir()
    paths = {ext: tmp_path / "b" / f"table1.{ext}" for ext in ("csv", "md", "tex")}
    write_paper_table(  # an existing caller: no paired argument at all
        _per_fold(),
        PAPER_TABLES["table1"],
        out_csv=paths["csv"],
        out_md=paths["md"],
        out_tex=paths["tex"],
        configured_models=MODELS,
        cohort_order=COHORTS,
        notes=["model selection: last_epoch"],
    )
    assert plain == {ext: p.read_text() for ext, p in paths.items()}
    assert PAIRED_MARK not in plain["md"] and r"\S" not in plain["tex"]
    assert pd.read_csv(paths["csv"]).columns.tolist() == LONG_COLUMNS
    # with a paired input only the § cells, the § note and the paired CSV columns differ
    marked = _write(tmp_path, "table1", _paired())
    strip = [line.replace(PAIRED_MARK, "") for line in marked["md"].splitlines()]
    assert [line for line in strip if not line.startswith("- ")] == [
        line for line in plain["md"].splitlines() if not line.startswith("- ")
    ]


def test_write_paper_tables_reads_the_paired_csv(tmp_path: Path) -> None:
    tsv, paired_csv = tmp_path / "cindex_folds.tsv", tmp_path / "paired.csv"
    _per_fold().to_csv(tsv, sep="\t", index=False)
    _paired().to_csv(paired_csv, index=False)
    outputs = {
        key: {ext: tmp_path / f"{key}.{ext}" for ext in ("csv", "md", "tex")}
        for key in ("table1", "table2")
    }
    result = write_paper_tables(
        tsv,
        outputs=outputs,
        configured_models=MODELS,
        cohort_order=COHORTS,
        paired=paired_csv,
    )
    t1 = result["table1"].set_index(["model", "cohort"])
    assert t1["paired_significant"].to_dict()[("mcat", "TCGA-BLCA")]
    assert PAIRED_MARK in _md_cells(outputs["table1"]["md"].read_text(), "MCAT")[0]
    with pytest.raises(ValueError, match="one reference model expected"):
        paper_table(
            _per_fold(),
            PAPER_TABLES["table1"],
            configured_models=MODELS,
            cohort_order=COHORTS,
            paired=_paired().assign(reference=["ours", "snn"] * 3),
        )
