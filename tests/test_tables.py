"""mmsurv.evaluate tables: per-fold c-index, mean ± std by hand, Markdown markup and notes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmsurv.evaluate.cindex_tables import (
    RANDOM_INIT,
    cindex_wide,
    derive_notes,
    fold_cindex,
    provenance_rst,
    summarize_cindex,
    write_cindex_tables,
)
from mmsurv.evaluate.metrics_table import metrics_markdown
from mmsurv.evaluate.paper_tables import (
    PAPER_TABLES,
    paper_table,
    read_published,
    tex_escape,
    write_paper_table,
)
from mmsurv.evaluate.stage import write_paper_tables

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
    assert list(per_fold.columns[:7]) == [
        "cohort", "model", "fold", "seed", "cindex", "n", "n_events"
    ]  # fmt: skip
    assert (per_fold["seed"] == 0).all()  # predictions without a seed column: one seed, 0
    assert len(per_fold) == 2 * 3 * 3
    for row in per_fold.itertuples():
        assert row.cindex == pytest.approx(DESIGN[row.cohort][row.model][row.fold], abs=1e-12)
        assert (row.n, row.n_events) == (4, 4)


def test_summary_by_hand() -> None:
    summary = summarize_cindex(fold_cindex(_predictions()), model_order=["SNN", "MCAT", "Ours"])
    assert list(summary.columns) == [
        "cohort", "model", "mean", "std", "n_folds", "n_seeds", "n_runs", "ddof",
        "model_selection", "cell",
    ]  # fmt: skip
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
    assert list(table.columns) == [
        "cohort", "model", "mean", "std", "n_folds", "n_seeds", "n_runs", "ddof", "model_selection"
    ]  # fmt: skip
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
    assert "- std: sample std (ddof=1) over 3 folds x 1 seed = 3 runs" in lines
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
    with pytest.raises(ValueError, match="repeated \\(cohort, model, seed, case_id\\)"):
        fold_cindex(pd.concat([preds, preds.iloc[:1]]))
    per_fold = fold_cindex(preds)
    with pytest.raises(ValueError, match=r"model_order names \['CLAM'\]"):
        summarize_cindex(per_fold, model_order=["SNN", "CLAM"])
    # bad inputs still raise, naming the fold (a fold without an event is NaN instead:
    # tests/test_no_event_fold.py)
    bad = preds.copy()
    bad.loc[bad["model"].eq("SNN") & bad["fold"].eq(1) & bad["cohort"].eq("LUAD"), "risk"] = np.nan
    with pytest.raises(ValueError, match="model=SNN fold=1 seed=0: risk must be finite"):
        fold_cindex(bad)


# --------------------------------------------------------------------------------------------
# the paper's Table 1 / Table 2, Markdown + LaTeX, published numbers
# --------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]

# Verbatim from the paper (Table 1 and the Table 2 rows), as transcribed in the project's spec.
PAPER_TABLE1 = """
| SNN | | ✓ | 0.606±0.041 | 0.645±0.038 | 0.671±0.037 |
| SNNTrans | | ✓ | 0.653±0.020 | 0.682±0.040 | 0.661±0.047 |
| AttnMIL | ✓ | | 0.545±0.041 | 0.578±0.057 | 0.618±0.076 |
| CLAM | ✓ | | 0.560±0.023 | 0.582±0.055 | 0.605±0.078 |
| TransMIL | ✓ | | 0.594±0.042 | 0.585±0.035 | 0.672±0.041 |
| Porpoise | ✓ | ✓ | 0.636±0.024 | 0.647±0.031 | 0.695±0.032 |
| HFBSurv | ✓ | ✓ | 0.639±0.027 | 0.650±0.049 | 0.672±0.019 |
| MCAT | ✓ | ✓ | 0.660±0.020 | 0.667±0.029 | 0.664±0.047 |
| DualTrans | ✓ | ✓ | 0.683±0.019 | 0.665±0.037 | 0.675±0.038 |
| Ours | ✓ | ✓ | 0.731±0.034 | 0.706±0.020 | 0.712±0.046 |
"""
PAPER_TABLE2 = """
w/o SimMe 0.691±0.029 / 0.693±0.016 / 0.680±0.043
w/o BDCA 0.665±0.011 / 0.669±0.019 / 0.669±0.037
w/o OT 0.685±0.036 / 0.684±0.017 / 0.680±0.046
Ours (All components) 0.731±0.034 / 0.706±0.020 / 0.712±0.046
"""


def _paper_cells(text: str) -> dict[tuple[str, str], tuple[float, float]]:
    """{(method, cohort): (mean, std)} from the verbatim paper rows above."""
    import re

    out = {}
    for line in text.strip().splitlines():
        cells = re.findall(r"(\d\.\d{3})±(\d\.\d{3})", line)
        method = re.split(r"\s*\|?\s*[\d✓]", line.strip("| "), maxsplit=1)[0].strip(" |")
        for cohort, (m, s) in zip(("BLCA", "LUAD", "UCEC"), cells, strict=True):
            out[(method, cohort)] = (float(m), float(s))
    return out


def test_published_tables_equal_the_paper() -> None:
    for name, text in (("table1", PAPER_TABLE1), ("table2", PAPER_TABLE2)):
        table = read_published(REPO / "resources" / "published" / f"zhang2025_{name}.csv")
        expected = _paper_cells(text)
        got = {(r.method, r.cohort): (r.mean, r.std) for r in table.itertuples(index=False)}
        assert got == expected
        spec = PAPER_TABLES[name]
        paper_models = [m for m in spec.models if m not in spec.not_in_paper]
        assert table["model"].drop_duplicates().tolist() == paper_models
        assert {spec.name(m) for m in table["model"]} == set(table["method"])


def _per_fold_models(means: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """A per-fold c-index table: {model: {cohort: [c-index per fold]}}."""
    rows = [
        {
            "cohort": cohort,
            "model": model,
            "fold": k,
            "cindex": c,
            "model_selection": "last_epoch",
            "encoder_weights": "none" if model.startswith("snn") else RANDOM_INIT,
        }
        for model, by_cohort in means.items()
        for cohort, values in by_cohort.items()
        for k, c in enumerate(values)
    ]
    return pd.DataFrame(rows)


FOLDS = {
    "ours": {"TCGA-BLCA": [0.70, 0.74, 0.72], "DEMO-X": [0.60, 0.62, 0.64]},
    "mcat": {"TCGA-BLCA": [0.66, 0.64, 0.65], "DEMO-X": [0.70, 0.70, 0.70]},
    "snn": {"TCGA-BLCA": [0.60, 0.61, 0.62], "DEMO-X": [0.50, 0.52, 0.54]},
    "attn_mil": {"TCGA-BLCA": [0.55, 0.56, 0.57], "DEMO-X": [0.61, 0.62, 0.63]},
    "ours_wo_ot": {"TCGA-BLCA": [0.68, 0.69, 0.70], "DEMO-X": [0.58, 0.59, 0.60]},
    "ours_wo_bdca": {"TCGA-BLCA": [0.69, 0.69, 0.69], "DEMO-X": [0.66, 0.67, 0.68]},
}
CONFIGURED = ["snn", "attn_mil", "mcat", "ours", "ours_wo_ot", "ours_wo_bdca"]


def test_table1_and_table2_split_order_and_modalities() -> None:
    per_fold = _per_fold_models(FOLDS)
    t1 = paper_table(
        per_fold,
        PAPER_TABLES["table1"],
        configured_models=CONFIGURED,
        cohort_order=["TCGA-BLCA", "DEMO-X"],
    )
    t2 = paper_table(
        per_fold,
        PAPER_TABLES["table2"],
        configured_models=CONFIGURED,
        cohort_order=["TCGA-BLCA", "DEMO-X"],
    )
    # paper order, only the configured models of each table, each model in its own table
    assert t1["model"].drop_duplicates().tolist() == ["snn", "attn_mil", "mcat", "ours"]
    assert t2["model"].drop_duplicates().tolist() == ["ours_wo_bdca", "ours_wo_ot", "ours"]
    assert t1["display_name"].drop_duplicates().tolist() == ["SNN", "AttnMIL", "MCAT", "Ours"]
    assert t2["display_name"].drop_duplicates().tolist() == [
        "w/o BDCA",
        "w/o OT",
        "Ours (All components)",
    ]
    flags = t1.drop_duplicates("model").set_index("model")[["P", "G"]]
    assert flags.to_dict("index") == {
        "snn": {"P": False, "G": True},
        "attn_mil": {"P": True, "G": False},
        "mcat": {"P": True, "G": True},
        "ours": {"P": True, "G": True},
    }
    blca = t1[t1["cohort"] == "TCGA-BLCA"].set_index("model")
    assert blca.loc["ours", "mean"] == pytest.approx(0.72)
    assert blca.loc["ours", "std"] == pytest.approx(0.02)  # sample std of .70 .74 .72
    assert blca["rank"].to_dict() == {"snn": 0, "attn_mil": 0, "mcat": 2, "ours": 1}
    # a model configured but left out of training.models is not shown even if results exist
    only = paper_table(
        per_fold, PAPER_TABLES["table1"], configured_models=["ours"], cohort_order=["DEMO-X"]
    )
    assert only["model"].tolist() == ["ours"]
    with pytest.raises(ValueError, match=r"model_order names \['clam_sb'\]"):
        paper_table(
            per_fold,
            PAPER_TABLES["table1"],
            configured_models=["clam_sb"],
            cohort_order=["DEMO-X"],
        )


def test_markdown_and_latex_markup(tmp_path: Path) -> None:
    per_fold = _per_fold_models(FOLDS)
    paths = {ext: tmp_path / f"t1.{ext}" for ext in ("csv", "md", "tex")}
    write_paper_table(
        per_fold,
        PAPER_TABLES["table1"],
        out_csv=paths["csv"],
        out_md=paths["md"],
        out_tex=paths["tex"],
        configured_models=CONFIGURED,
        cohort_order=["TCGA-BLCA", "DEMO-X"],
        notes=["model selection: last_epoch", "mean ± sample std (ddof=1) over 3 folds"],
    )
    md = paths["md"].read_text().splitlines()
    assert md[0] == "**Table 1: c-index of the comparison methods**"
    assert md[2] == "| Method | P | G | TCGA-BLCA | DEMO-X |"
    assert md[3] == "|:---|:---:|:---:|:---:|:---:|"
    assert md[4] == "| SNN |  | ✓ | 0.610 ± 0.010 | 0.520 ± 0.020 |"
    assert md[5] == "| AttnMIL | ✓ |  | 0.560 ± 0.010 | <u>0.620 ± 0.010</u> |"
    assert md[6] == "| MCAT | ✓ | ✓ | <u>0.650 ± 0.010</u> | **0.700 ± 0.000** |"
    assert md[7] == "| Ours | ✓ | ✓ | **0.720 ± 0.020** | <u>0.620 ± 0.020</u> |"
    assert "- encoder weights: random-init for attn_mil, mcat, ours" in " ".join(md)
    assert any(line.startswith("- bold: best mean per cohort") for line in md)
    tex = paths["tex"].read_text()
    lines = tex.splitlines()
    assert r"\begin{tabular}{lcccc}" in tex
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"\cmidrule(lr){4-5}"):
        assert cmd in tex
    assert r"Method & P & G & \multicolumn{2}{c}{c-index} \\" in tex
    assert r" &  &  & TCGA-BLCA & DEMO-X \\" in tex
    assert (
        r"    Ours & $\checkmark$ & $\checkmark$ & \textbf{0.720 $\pm$ 0.020} & "
        r"\underline{0.620 $\pm$ 0.020} \\" in lines
    )
    assert r"\textbf{0.700 $\pm$ 0.000}" in tex  # MCAT best on DEMO-X
    # every body row has as many cells as the column spec
    body = lines[lines.index(r"    \midrule") + 1 : lines.index(r"    \bottomrule")]
    assert len(body) == 4 and all(row.count(" & ") == 4 for row in body)
    assert r"attn\_mil" in tex and "attn_mil" not in tex.replace(r"attn\_mil", "")
    csv = pd.read_csv(paths["csv"])
    assert csv["table"].unique().tolist() == ["table1"]
    assert csv["paper_mean"].isna().all()


def test_published_columns_and_delta(tmp_path: Path) -> None:
    per_fold = _per_fold_models(FOLDS)
    published = read_published(REPO / "resources" / "published" / "zhang2025_table1.csv")
    paths = {ext: tmp_path / f"t1.{ext}" for ext in ("csv", "md", "tex")}
    long = write_paper_table(
        per_fold,
        PAPER_TABLES["table1"],
        out_csv=paths["csv"],
        out_md=paths["md"],
        out_tex=paths["tex"],
        configured_models=CONFIGURED,
        cohort_order=["TCGA-BLCA", "DEMO-X"],
        published=published,
        published_map={"TCGA-BLCA": "BLCA"},
    )
    ours = long[(long["model"] == "ours") & (long["cohort"] == "TCGA-BLCA")].iloc[0]
    assert (ours["paper_mean"], ours["paper_std"]) == (0.731, 0.034)
    assert ours["delta"] == pytest.approx(0.72 - 0.731)
    demo = long[long["cohort"] == "DEMO-X"]
    assert (demo["published_column"] == "").all() and demo["paper_mean"].isna().all()
    md = paths["md"].read_text()
    assert (
        "| Method | P | G | TCGA-BLCA | TCGA-BLCA paper | TCGA-BLCA Δ | DEMO-X | DEMO-X paper "
        "| DEMO-X Δ |" in md
    )
    assert (
        "| Ours | ✓ | ✓ | **0.720 ± 0.020** | 0.731 ± 0.034 | −0.011 | <u>0.620 ± 0.020</u> "
        "| — | — |" in md
    )
    assert "| SNN |  | ✓ | 0.610 ± 0.010 | 0.606 ± 0.041 | +0.004 |" in md
    assert "TCGA-BLCA → BLCA; Δ = our mean − paper mean" in md
    assert "- no published column mapped for DEMO-X" in md
    tex = paths["tex"].read_text()
    assert r"\multicolumn{3}{c}{TCGA-BLCA} & \multicolumn{3}{c}{DEMO-X} \\" in tex
    assert r"\cmidrule(lr){4-6} \cmidrule(lr){7-9}" in tex
    assert r"ours & paper & $\Delta$ & ours & paper & $\Delta$ \\" in tex
    assert r"\textbf{0.720 $\pm$ 0.020} & 0.731 $\pm$ 0.034 & $-$0.011" in tex
    assert r"\begin{tabular}{lcccccccc}" in tex
    csv = pd.read_csv(paths["csv"], keep_default_na=False, na_values=[""])
    row = csv[(csv["model"] == "ours") & (csv["cohort"] == "TCGA-BLCA")].iloc[0]
    assert row["published_column"] == "BLCA" and row["delta"] == pytest.approx(-0.011)
    with pytest.raises(ValueError, match=r"mapping names \['TCGA-LUAD'\]"):
        paper_table(
            per_fold,
            PAPER_TABLES["table1"],
            configured_models=CONFIGURED,
            cohort_order=["TCGA-BLCA"],
            published=published,
            published_map={"TCGA-LUAD": "LUAD"},
        )


def test_empty_table_and_tex_escaping(tmp_path: Path) -> None:
    per_fold = _per_fold_models({"snn": FOLDS["snn"]})
    paths = {ext: tmp_path / f"t2.{ext}" for ext in ("csv", "md", "tex")}
    long = write_paper_table(
        per_fold,
        PAPER_TABLES["table2"],
        out_csv=paths["csv"],
        out_md=paths["md"],
        out_tex=paths["tex"],
        configured_models=["snn"],
        cohort_order=["DEMO-X"],
    )
    assert long.empty
    assert "No model of this table is configured" in paths["md"].read_text()
    tex = paths["tex"].read_text()
    assert r"\begin{tabular}" not in tex and tex.rstrip().endswith(r"\end{table}")
    assert tex_escape("a_b & 50% #1 {x} ± Δ — ✓") == (
        r"a\_b \& 50\% \#1 \{x\} $\pm$ $\Delta$ --- $\checkmark$"
    )


def test_write_paper_tables_from_the_per_fold_tsv(tmp_path: Path) -> None:
    per_fold = fold_cindex(_predictions(random_init={"Ours"}))
    per_fold["model"] = per_fold["model"].map({"SNN": "snn", "MCAT": "mcat", "Ours": "ours"})
    tsv = tmp_path / "cindex_folds.tsv"
    per_fold.to_csv(tsv, sep="\t", index=False)
    outputs = {
        key: {ext: tmp_path / f"{key}.{ext}" for ext in ("csv", "md", "tex")}
        for key in ("table1", "table2")
    }
    result = write_paper_tables(
        tsv,
        outputs=outputs,
        configured_models=["snn", "mcat", "ours"],
        cohort_order=["BLCA", "LUAD"],
        published={k: REPO / "resources" / "published" / f"zhang2025_{k}.csv" for k in outputs},
        published_map={"BLCA": "BLCA", "LUAD": "LUAD"},
        out_prov=tmp_path / "prov.rst",
    )
    assert result["table1"]["model"].drop_duplicates().tolist() == ["snn", "mcat", "ours"]
    assert result["table2"]["model"].drop_duplicates().tolist() == ["ours"]
    md1 = outputs["table1"]["md"].read_text()
    assert "| SNN |  | ✓ | <u>0.889 ± 0.096</u> | 0.606 ± 0.041 | +0.283 |" in md1
    assert "mean ± sample std (ddof=1) over 3 folds" in md1
    assert "encoder weights: random-init for ours" in md1
    md2 = outputs["table2"]["md"].read_text()
    assert "| Ours (All components) | **0.944 ± 0.096** | 0.731 ± 0.034 | +0.213 |" in md2
    prov = (tmp_path / "prov.rst").read_text()
    assert "``none`` (no pathology encoder) for snn" in prov
    assert "``random-init`` (untrained encoder" in prov and "for ours" in prov
    assert "model selection ``last_epoch``; 3 cross-validation folds" in prov


def test_provenance_rst_states_weights_policy_and_folds() -> None:
    frame = _predictions(random_init={"Ours"})
    text = provenance_rst(frame)
    assert text.startswith("*Read from the predictions:* encoder weights ")
    assert "``random-init`` (untrained encoder, not the paper's ImageNet ResNet50) for Ours" in text
    assert "``resnet50.pth sha256:ab12`` (pretrained) for MCAT" in text
    assert "model selection ``last_epoch``; 3 cross-validation folds" in text
    with pytest.raises(ValueError, match=r"provenance lacks column\(s\) \['model_selection'\]"):
        provenance_rst(frame.drop(columns="model_selection"))


def test_metrics_markdown_cells() -> None:
    base = {"cohort": "C", "model": "ours", "n_folds": 5, "ddof": 1}
    summary = pd.DataFrame(
        [
            {
                **base,
                "metric": "cindex_pooled",
                "value": 0.7,
                "ci_low": 0.61,
                "ci_high": 0.79,
                "ci_level": 0.9,
            },
            {
                **base,
                "metric": "td_auc",
                "horizon": 12.0,
                "horizon_source": "configured",
                "value": 0.75,
                "std": 0.05,
                "n_folds_defined": 4,
            },
            {
                **base,
                "metric": "td_auc",
                "horizon": 600.0,
                "horizon_source": "configured",
                "value": np.nan,
                "std": np.nan,
                "n_folds_defined": 0,
            },
            {**base, "metric": "ibs", "value": 0.18, "std": 0.02, "n_folds_defined": 5},
        ]
    )
    md = metrics_markdown(summary, ["a note"])
    lines = md.splitlines()
    assert lines[0] == "### C"
    assert lines[2] == "| Model | c-index pooled [90% CI] | AUC(12 mo) | AUC(600 mo) | IBS |"
    assert lines[4] == "| Ours | 0.700 [0.610, 0.790] | 0.750 ± 0.050 (4/5) | — | 0.180 ± 0.020 |"
    assert "Horizons (months): configured." in md and md.endswith("- a note\n")
