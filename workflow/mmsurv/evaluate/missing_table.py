"""The c-index when a modality is missing: rows models, columns cohort x {both, path, omics}.

Reads every train job's ``predictions_missing.parquet`` (training/missing.py). Each scoring is
put in the column of the inputs it read (``modalities_used``): 'path+omic' -> both, 'path' ->
path only (omics withheld), 'omic' -> omics only (path withheld). A multimodal model fills all
three; a unimodal model's one scoring lands in the column of its input (a reference for the
multimodal model with the other modality withheld); cox_clinical reads neither and is left out.
Under missing_policy keep_unimodal the real held-out cases lacking a modality join the column
of what they have. Cells are mean ± std over the fold x seed runs (cindex_tables helpers).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from mmsurv.evaluate.cindex_tables import fold_cindex, summarize_cindex, undefined_fold_notes
from mmsurv.evaluate.runs import leaky_note, runs_phrase
from mmsurv.io import write_text_atomic
from mmsurv.model_catalog import model_inputs

__all__ = [
    "SCORINGS",
    "missing_modality_summary",
    "missing_modality_wide",
    "write_missing_modality_table",
]

# modalities_used -> column label, in column order
SCORINGS = {
    "path+omic": "both",
    "path": "path only (omics withheld)",
    "omic": "omics only (path withheld)",
}
NA_CELL = "n/a"


def missing_modality_summary(
    predictions: pd.DataFrame,
    *,
    model_order: Sequence[str],
    cohort_order: Sequence[str],
    ddof: int = 1,
    decimals: int = 3,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long table (cohort, model, scoring, mean, std, n_runs, cell) and the per-run c-index.

    ``predictions``: predictions_missing rows (modalities_used, withheld, the prediction columns).
    """
    missing = [c for c in ("modalities_used", "withheld") if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions_missing lacks column(s) {missing}")
    longs, runs = [], []
    for used, label in SCORINGS.items():
        # *_clinical models' clinical block travels with the omics: '+clinical' is no column
        sub = predictions[predictions["modalities_used"].str.removesuffix("+clinical") == used]
        if sub.empty:
            continue
        per_run = fold_cindex(sub)
        models = [m for m in model_order if m in set(per_run["model"])]
        cohorts = [c for c in cohort_order if c in set(per_run["cohort"])]
        if not models or not cohorts:
            continue
        summary = summarize_cindex(
            per_run, ddof=ddof, model_order=models, cohort_order=cohorts, decimals=decimals
        )
        longs.append(summary.assign(scoring=label))
        runs.append(per_run.assign(scoring=label))
    if not longs:
        raise ValueError("no scoring of pathology and/or genomics in the predictions")
    cols = ["cohort", "model", "scoring", "mean", "std", "n_folds", "n_seeds", "n_runs", "ddof"]
    return pd.concat(longs, ignore_index=True)[[*cols, "cell"]], pd.concat(runs, ignore_index=True)


def missing_modality_wide(
    summary: pd.DataFrame, *, model_order: Sequence[str], cohort_order: Sequence[str]
) -> pd.DataFrame:
    """Rows models (those with any cell), columns 'cohort · scoring'; 'n/a' where not scored."""
    models = [m for m in model_order if m in set(summary["model"])]
    columns = [f"{c} · {s}" for c in cohort_order for s in SCORINGS.values()]
    wide = pd.DataFrame(NA_CELL, index=pd.Index(models, name="model"), columns=columns)
    for row in summary.itertuples(index=False):
        if row.model in wide.index and f"{row.cohort} · {row.scoring}" in wide.columns:
            wide.loc[row.model, f"{row.cohort} · {row.scoring}"] = row.cell
    return wide


def _markdown(wide: pd.DataFrame, notes: Sequence[str]) -> str:
    """GitHub Markdown of the wide table, then the notes as a list."""
    lines = [
        "| Model | " + " | ".join(map(str, wide.columns)) + " |",
        "|---|" + "|".join([":---:"] * len(wide.columns)) + "|",
    ]
    for model, row in wide.iterrows():
        lines.append("| " + " | ".join([str(model), *map(str, row.tolist())]) + " |")
    lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def write_missing_modality_table(
    files: Sequence[str | os.PathLike[str]],
    *,
    out_csv: str | os.PathLike[str],
    out_md: str | os.PathLike[str],
    model_order: Sequence[str],
    cohort_order: Sequence[str],
    ddof: int = 1,
) -> pd.DataFrame:
    """Read predictions_missing files; write tables/missing_modality.{csv,md}; return the CSV."""
    if not files:
        raise ValueError("no predictions_missing files given")
    preds = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    summary, per_run = missing_modality_summary(
        preds, model_order=model_order, cohort_order=cohort_order, ddof=ddof
    )
    wide = missing_modality_wide(summary, model_order=model_order, cohort_order=cohort_order)
    kind = "sample std" if ddof == 1 else "population std"
    notes = [
        "both = pathology and genomics; path only = genomics withheld (a multimodal model sees "
        "its learned missing token instead; a pathology-only model's normal scoring); omics "
        "only = pathology withheld, likewise",
        "the missing tokens are learned only under training.modality_dropout > 0; without it "
        "they keep their initial values, so the withheld columns show an untrained stand-in",
        f"mean ± {kind} (ddof={ddof}) over {runs_phrase(per_run[per_run['cindex'].notna()])}",
        f"{NA_CELL}: the model does not read that input",
    ]
    multimodal = {m for m in set(preds["model"]) if {"path", "omic"} <= model_inputs(m)}
    none = preds[(preds["withheld"] == "none") & preds["model"].isin(multimodal)]
    if (none["modalities_used"].str.removesuffix("+clinical") != "path+omic").any():
        notes.append(
            "missing_policy keep_unimodal: held-out cases lacking a modality are in the "
            "column of the input they have"
        )
    leaky = leaky_note(per_run)
    notes += [n for n in ([leaky] if leaky else []) + undefined_fold_notes(per_run)]
    csv = summary.drop(columns="cell").to_csv(index=False, float_format="%.6f")
    write_text_atomic(out_csv, csv)
    write_text_atomic(out_md, _markdown(wide, notes))
    return summary
