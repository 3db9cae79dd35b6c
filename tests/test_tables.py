"""Tests of mmsurv.tables: per-fold c-index, mean ± std by hand, Markdown markup and notes."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from mmsurv.tables import (
    cindex_wide,
    derive_notes,
    fold_cindex,
    summarize_cindex,
    write_cindex_tables,
)

# Four cases per fold, all deaths at months 1..4; the c-index of each risk order by hand:
# all 6 pairs comparable; a pair is concordant when the earlier death has the higher risk.
RISKS = {
    1.0: [4, 3, 2, 1],  # 6/6
    5 / 6: [4, 3, 1, 2],  # only (3, 4) discordant
    1 / 6: [2, 1, 3, 4],  # only (1, 2) concordant
    0.0: [1, 2, 3, 4],
}
# cohort -> model -> c-index per fold
DESIGN = {
    "BLCA": {"SNN": [1.0, 5 / 6, 5 / 6], "MCAT": [5 / 6, 1 / 6, 0.0], "Ours": [1.0, 1.0, 5 / 6]},
    "LUAD": {"SNN": [1 / 6, 1 / 6, 0.0], "MCAT": [1.0, 1.0, 1.0], "Ours": [5 / 6, 5 / 6, 1.0]},
}


def _predictions(random_init: set[str] = frozenset()) -> pd.DataFrame:
    rows = []
    for cohort, models in DESIGN.items():
        for model, cidx in models.items():
            for fold, c in enumerate(cidx):
                for i, r in enumerate(RISKS[c]):
                    rows.append(
                        {
                            "case_id": f"{cohort}-{fold}-{i}",
                            "fold": fold,
                            "risk": float(r),
                            "survival_months": float(i + 1),
                            "event": True,
                            "model": model,
                            "cohort": cohort,
                            "model_selection": "last_epoch",
                            "encoder_weights": "random-init"
                            if model in random_init
                            else ("none" if model == "SNN" else "resnet50.pth sha256:ab12"),
                        }
                    )
    return pd.DataFrame(rows)


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def test_fold_cindex_by_hand() -> None:
    per_fold = fold_cindex(_predictions())
    assert list(per_fold.columns[:6]) == ["cohort", "model", "fold", "cindex", "n", "n_events"]
    assert len(per_fold) == 2 * 3 * 3
    for row in per_fold.itertuples():
        assert row.cindex == pytest.approx(DESIGN[row.cohort][row.model][row.fold], abs=1e-12)
        assert (row.n, row.n_events) == (4, 4)


def test_summary_by_hand() -> None:
    summary = summarize_cindex(fold_cindex(_predictions()), model_order=["SNN", "MCAT", "Ours"])
    assert list(summary.columns) == ["cohort", "model", "mean", "std", "n_folds", "ddof", "cell"]
    assert summary["model"].tolist() == ["SNN", "MCAT", "Ours"] * 2
    for row in summary.itertuples():
        mean, std = _mean_std(DESIGN[row.cohort][row.model])
        assert row.mean == pytest.approx(mean, abs=1e-12)
        assert row.std == pytest.approx(std, abs=1e-12)
        assert row.n_folds == 3 and row.ddof == 1
        assert row.cell == f"{mean:.3f} ± {std:.3f}"
    # BLCA SNN: mean 8/9, sample std sqrt(((1/9)^2 + 2 (1/18)^2) / 2) = 0.0962
    assert summary.loc[0, "cell"] == "0.889 ± 0.096"
    pop = summarize_cindex(fold_cindex(_predictions()), ddof=0, model_order=["SNN", "MCAT", "Ours"])
    assert (pop["ddof"] == 0).all()
    # population std = sample std * sqrt((n - 1) / n)
    assert pop["std"].to_numpy() == pytest.approx(summary["std"].to_numpy() * math.sqrt(2 / 3))


def test_wide_markup_bold_best_underline_second() -> None:
    summary = summarize_cindex(fold_cindex(_predictions()))
    wide = cindex_wide(
        summary, model_order=["SNN", "MCAT", "Ours"], cohort_order=["BLCA", "LUAD"], markup=True
    )
    # BLCA means: SNN 0.889, MCAT 0.333, Ours 0.944; LUAD: SNN 0.111, MCAT 1.000, Ours 0.889
    assert wide.loc["Ours", "BLCA"].startswith("**0.944")
    assert wide.loc["SNN", "BLCA"].startswith("<u>0.889")
    assert wide.loc["MCAT", "BLCA"] == "0.333 ± 0.441"
    assert wide.loc["MCAT", "LUAD"] == "**1.000 ± 0.000**"
    assert wide.loc["Ours", "LUAD"].startswith("<u>0.889")
    assert not wide.loc["SNN", "LUAD"].startswith(("**", "<u>"))


def test_write_tables(tmp_path: Path) -> None:
    per_fold = fold_cindex(_predictions())
    csv, md = tmp_path / "tables" / "cindex.csv", tmp_path / "tables" / "cindex.md"
    write_cindex_tables(
        per_fold,
        csv,
        md,
        model_order=["SNN", "MCAT", "Ours"],
        cohort_order=["LUAD", "BLCA"],
        notes=["model selection: last epoch"],
    )
    table = pd.read_csv(csv)
    assert list(table.columns) == ["cohort", "model", "mean", "std", "n_folds", "ddof"]
    assert table["cohort"].tolist() == ["LUAD"] * 3 + ["BLCA"] * 3
    assert table.loc[table["model"].eq("Ours") & table["cohort"].eq("BLCA"), "mean"].item() == (
        pytest.approx(17 / 18, abs=1e-6)
    )
    text = md.read_text()
    lines = text.splitlines()
    assert lines[0] == "| Model | LUAD | BLCA |"
    assert lines[2].startswith("| SNN | 0.111 ± 0.096 | <u>0.889 ± 0.096</u> |")
    assert lines[3] == "| MCAT | **1.000 ± 0.000** | 0.333 ± 0.441 |"
    assert "- model selection: last epoch" in lines
    assert "- std: sample std over 3 folds (ddof=1)" in lines
    assert "random-init" not in text
    assert sorted(p.name for p in csv.parent.iterdir()) == ["cindex.csv", "cindex.md"]


def test_random_init_note_derived_from_data(tmp_path: Path) -> None:
    per_fold = fold_cindex(_predictions(random_init={"MCAT", "Ours"}))
    md = tmp_path / "cindex.md"
    write_cindex_tables(
        per_fold,
        tmp_path / "cindex.csv",
        md,
        model_order=["SNN", "MCAT", "Ours"],
        cohort_order=["BLCA", "LUAD"],
        notes=[],
    )
    text = md.read_text()
    assert "encoder weights: random-init for MCAT, Ours" in text
    assert "model selection: last_epoch" in text
    # the caller's own random-init note is kept, not repeated
    notes = derive_notes(per_fold, ["encoder weights: random-init"])
    assert sum("random-init" in n for n in notes) == 1
    # derived from the predictions even when the per-fold table has no provenance columns
    bare = per_fold[["cohort", "model", "fold", "cindex", "n", "n_events"]]
    preds = _predictions(random_init={"Ours"})
    assert not any("random-init" in n for n in derive_notes(bare))
    assert "encoder weights: random-init for Ours" in " ".join(
        derive_notes(bare, predictions=preds)
    )
    write_cindex_tables(
        bare,
        tmp_path / "c2.csv",
        tmp_path / "c2.md",
        model_order=["SNN", "Ours"],
        cohort_order=["BLCA", "LUAD"],
        notes=["model selection: last epoch", "mean ± sample std (ddof=1) over 3 folds"],
        predictions=preds,
    )
    assert "random-init for Ours" in (tmp_path / "c2.md").read_text()
    # a table whose rows all have real weights needs no such note
    assert not any("random-init" in n for n in derive_notes(per_fold[per_fold.model == "SNN"]))


def test_errors_are_precise() -> None:
    preds = _predictions()
    with pytest.raises(ValueError, match=r"predictions lacks column\(s\) \['encoder_weights'\]"):
        fold_cindex(preds.drop(columns="encoder_weights"))
    with pytest.raises(ValueError, match="repeated \\(cohort, model, case_id\\)"):
        fold_cindex(pd.concat([preds, preds.iloc[:1]]))
    per_fold = fold_cindex(preds)
    with pytest.raises(ValueError, match=r"model_order names \['CLAM'\]"):
        summarize_cindex(per_fold, model_order=["SNN", "CLAM"])
    bad = preds.copy()
    bad.loc[bad["model"].eq("SNN") & bad["fold"].eq(1) & bad["cohort"].eq("LUAD"), "event"] = False
    with pytest.raises(ValueError, match="cohort=LUAD model=SNN fold=1: All samples are censored"):
        fold_cindex(bad)
