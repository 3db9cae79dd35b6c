"""Per-fold c-index and its mean ± std table, plus the provenance notes every output states."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sksurv.exceptions import NoComparablePairException

from mmsurv.evaluate.runs import (
    check_unique_runs,
    is_leaky,
    leaky_note,
    runs_phrase,
    with_seed,
)
from mmsurv.evaluate.stats import (
    SurvivalInputError,
    _as_bool,
    _as_finite_float,
    concordance_index,
)
from mmsurv.io import write_text_atomic
from mmsurv.model_catalog import LINEAR_FLOORS

log = logging.getLogger(__name__)

__all__ = [
    "PREDICTION_COLUMNS",
    "cindex_wide",
    "derive_notes",
    "fold_cindex",
    "provenance_rst",
    "summarize_cindex",
    "undefined_cells",
    "undefined_fold_clauses",
    "undefined_fold_notes",
    "write_cindex_tables",
]

PREDICTION_COLUMNS = (
    "case_id",
    "fold",
    "risk",
    "survival_months",
    "event",
    "model",
    "cohort",
    "model_selection",
    "encoder_weights",
)
# cindex_folds.tsv: one row per cohort x model x fold x seed (a run)
FOLD_COLUMNS = [
    "cohort",
    "model",
    "fold",
    "seed",
    "cindex",
    "n",
    "n_events",
    "model_selection",
    "encoder_weights",
]
# cindex.csv: mean ± std over all fold x seed runs of each cohort x model
SUMMARY_COLUMNS = [
    "cohort",
    "model",
    "mean",
    "std",
    "n_folds",
    "n_seeds",
    "n_runs",
    "ddof",
    "model_selection",
]
RANDOM_INIT = "random-init"
MISSING_CELL = "—"
UNDEFINED_MARK = "†"  # marks a mean ± std over fewer folds: some fold's c-index is undefined


def _require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise a ValueError naming the columns of ``what`` that ``df`` lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def _join_unique(values: pd.Series) -> str:
    """Distinct non-missing values as text ('a' or 'a; b'); '' when all are missing."""
    uniq = sorted({str(v) for v in values.dropna()})
    return "; ".join(uniq)


def fold_cindex(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per-run c-index (sksurv, higher risk = worse) for each cohort × model × fold × seed.

    Returns FOLD_COLUMNS: cohort, model, fold, seed, cindex, n, n_events, plus the provenance
    columns model_selection and encoder_weights (distinct values in the group, '; '-joined), and
    last_epoch_cindex when any prediction has it (best_test_epoch_leaky), so that
    tables written from it can state them. A fold whose c-index is undefined (no event among
    its held-out cases, or no comparable pair) gets NaN and a logged warning; bad inputs raise.
    """
    _require_columns(predictions, PREDICTION_COLUMNS, "predictions")
    predictions = with_seed(predictions)
    key = ["cohort", "model", "seed", "case_id"]
    dup = predictions.duplicated(key, keep=False)
    if dup.any():
        first = list(predictions.loc[dup, key].to_dict("records")[0].values())
        raise ValueError(
            f"predictions hold {int(dup.sum())} rows for repeated (cohort, model, seed, "
            f"case_id), e.g. {first}; each case must be scored once per seed, by the fold "
            "that held it out"
        )
    leaky = "last_epoch_cindex" in predictions.columns
    rows = []
    groups = predictions.groupby(["cohort", "model", "fold", "seed"], sort=True)
    for (cohort, model, fold, seed), g in groups:
        try:
            cidx = _fold_value(g)
        except ValueError as err:
            where = f"cohort={cohort} model={model} fold={fold} seed={seed}"
            raise type(err)(f"{where}: {err}") from err
        if math.isnan(cidx):
            log.warning(
                "cohort=%s model=%s fold=%s seed=%s: c-index undefined (%s among its %d "
                "held-out cases); NaN in the tables",
                cohort,
                model,
                fold,
                seed,
                "no event" if not g["event"].astype(bool).any() else "no comparable pair",
                len(g),
            )
        row = {
            "cohort": cohort,
            "model": model,
            "fold": int(fold),
            "seed": int(seed),
            "cindex": cidx,
            "n": len(g),
            "n_events": int(g["event"].astype(bool).sum()),
            "model_selection": _join_unique(g["model_selection"]),
            "encoder_weights": _join_unique(g["encoder_weights"]),
        }
        if leaky:  # best_test_epoch_leaky runs: the held-out c-index of their last epoch
            row["last_epoch_cindex"] = float(pd.to_numeric(g["last_epoch_cindex"]).mean())
        rows.append(row)
    return pd.DataFrame(rows, columns=FOLD_COLUMNS + (["last_epoch_cindex"] if leaky else []))


def _fold_value(g: pd.DataFrame) -> float:
    """c-index of one fold's held-out cases; NaN when undefined (no event, no comparable pair)."""
    _as_finite_float(g["survival_months"].to_numpy(), "time")
    _as_finite_float(g["risk"].to_numpy(), "risk")
    if not _as_bool(g["event"].to_numpy(), "event").any() or len(g) < 2:
        return math.nan  # all censored, or a single held-out case: no pair to compare
    try:
        return concordance_index(
            g["survival_months"].to_numpy(), g["event"].to_numpy(), g["risk"].to_numpy()
        )
    except SurvivalInputError as err:
        if isinstance(err.__cause__, NoComparablePairException):
            return math.nan
        raise


def _ordered(present: Sequence[str], order: Sequence[str] | None, what: str) -> list[str]:
    """The rows/columns to show: ``order`` (all must be present) or the sorted present values."""
    if order is None:
        return sorted(present)
    order = list(order)
    dup = sorted({x for x in order if order.count(x) > 1})
    if dup:
        raise ValueError(f"{what}_order repeats {dup}")
    absent = [x for x in order if x not in set(present)]
    if absent:
        raise ValueError(
            f"{what}_order names {absent} but the per-fold table has no c-index for them; "
            f"available: {sorted(present)}"
        )
    return order


def summarize_cindex(
    per_fold: pd.DataFrame,
    *,
    ddof: int = 1,
    model_order: Sequence[str] | None = None,
    cohort_order: Sequence[str] | None = None,
    decimals: int = 3,
) -> pd.DataFrame:
    """Mean ± std of the per-run (fold x seed) c-index per model × cohort, in display order.

    Columns: cohort, model, mean, std (``ddof``; 1 = sample std over all fold x seed runs),
    n_folds and n_seeds (distinct ones with a defined c-index), n_runs (defined runs), ddof,
    model_selection and ``cell`` ("0.731 ± 0.034"). Models outside ``model_order`` are left out
    (the caller picks the rows, e.g. Table 1 vs Table 2); named models or cohorts without
    results raise, and so do two rows of one cohort x model x fold x seed. Runs with an
    undefined (NaN) c-index are left out of mean, std and the counts; the cell then ends in †
    (see :func:`undefined_fold_notes`), and reads "—†" when no run is defined.
    """
    _require_columns(per_fold, ["cohort", "model", "fold", "cindex"], "per_fold")
    per_fold = with_seed(per_fold)
    check_unique_runs(per_fold)
    models = _ordered(per_fold["model"].unique().tolist(), model_order, "model")
    cohorts = _ordered(per_fold["cohort"].unique().tolist(), cohort_order, "cohort")
    sub = per_fold[per_fold["model"].isin(models) & per_fold["cohort"].isin(cohorts)]
    if "model_selection" not in sub.columns:
        sub = sub.assign(model_selection="")
    defined = sub[sub["cindex"].notna()]
    agg = (
        sub.groupby(["cohort", "model"])["cindex"]
        .agg(mean="mean", std=lambda s: s.std(ddof=ddof), n_runs="count", n_rows="size")
        .reset_index()
    )
    counts = defined.groupby(["cohort", "model"]).agg(
        n_folds=("fold", "nunique"), n_seeds=("seed", "nunique")
    )
    agg = agg.join(counts, on=["cohort", "model"])
    agg[["n_folds", "n_seeds"]] = agg[["n_folds", "n_seeds"]].fillna(0).astype(int)
    policy = sub.groupby(["cohort", "model"])["model_selection"].agg(_join_unique)
    agg = agg.join(policy, on=["cohort", "model"])
    agg["ddof"] = ddof
    agg["cohort"] = pd.Categorical(agg["cohort"], categories=cohorts, ordered=True)
    agg["model"] = pd.Categorical(agg["model"], categories=models, ordered=True)
    agg = agg.sort_values(["cohort", "model"]).reset_index(drop=True)
    agg["cohort"] = agg["cohort"].astype(str)
    agg["model"] = agg["model"].astype(str)
    agg["cell"] = [
        (_cell(m, s, decimals) if np.isfinite(m) else MISSING_CELL)
        + (UNDEFINED_MARK if n < n_rows else "")
        for m, s, n, n_rows in zip(
            agg["mean"], agg["std"], agg["n_runs"], agg["n_rows"], strict=True
        )
    ]
    return agg[SUMMARY_COLUMNS + ["cell"]]


def _cell(mean: float, std: float, decimals: int) -> str:
    """'0.731 ± 0.034'; the std reads 'n/a' when undefined (a single fold with ddof=1)."""
    sd = "n/a" if not np.isfinite(std) else f"{std:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {sd}"


def cindex_wide(
    summary: pd.DataFrame,
    *,
    model_order: Sequence[str] | None = None,
    cohort_order: Sequence[str] | None = None,
    markup: bool = False,
    decimals: int = 3,
) -> pd.DataFrame:
    """Paper layout of :func:`summarize_cindex`: rows models, columns cohorts, "mean ± std" cells.

    With ``markup`` the best mean per column is **bold** and the second <u>underlined</u>,
    ranked on the means as displayed (rounded to ``decimals``), so equal-looking cells share a
    rank. A model without results for a cohort shows "—".
    """
    models = list(model_order) if model_order is not None else list(dict.fromkeys(summary["model"]))
    cohorts = (
        list(cohort_order) if cohort_order is not None else list(dict.fromkeys(summary["cohort"]))
    )
    wide = pd.DataFrame(MISSING_CELL, index=pd.Index(models, name="model"), columns=cohorts)
    for cohort in cohorts:
        col = summary[summary["cohort"] == cohort].set_index("model")
        col = col[col.index.isin(models)]
        ranks = display_ranks(col["mean"], decimals)
        for model, row in col.iterrows():
            text = row["cell"]
            if markup:
                text = _MD_MARK[ranks[model]].format(text)
            wide.loc[model, cohort] = text
    return wide


_MD_MARK = {1: "**{}**", 2: "<u>{}</u>", 0: "{}"}


def display_ranks(means: pd.Series, decimals: int = 3) -> pd.Series:
    """1 for the best mean as displayed (rounded to ``decimals``), 2 for the second, else 0.

    Equal-looking means share a rank; NaN means get 0.
    """
    shown = means.round(decimals)
    distinct = sorted(shown.dropna().unique(), reverse=True)
    best = {v: i + 1 for i, v in enumerate(distinct[:2])}
    return shown.map(lambda v: best.get(v, 0)).astype(int)


def derive_notes(
    per_fold: pd.DataFrame,
    notes: Sequence[str] = (),
    *,
    ddof: int = 1,
    predictions: pd.DataFrame | None = None,
) -> list[str]:
    """The caller's notes plus what the data imply and the caller left out.

    Adds a random-init encoder note whenever any model's predictions came from a
    ``random-init`` encoder (results then say nothing about the paper's ResNet50 features),
    the model-selection policy when no note names it, the std definition (over how many
    folds x seeds = runs) when none does, and the "leaky" note with the gap to the last epoch
    when any run chose its epoch on the held-out fold (best_test_epoch_leaky).
    Provenance is read from ``per_fold``'s encoder_weights/model_selection columns and, when
    given, from ``predictions``.
    """
    out = list(notes)
    text = " ".join(out).lower()
    sources = [df for df in (per_fold, predictions) if df is not None]
    prov = pd.concat(
        [df.reindex(columns=["model", "encoder_weights", "model_selection"]) for df in sources],
        ignore_index=True,
    )
    weights = prov[["model", "encoder_weights"]].dropna()
    rand = weights[weights["encoder_weights"].astype(str).str.contains(RANDOM_INIT, regex=False)]
    if len(rand) and RANDOM_INIT not in text:
        models = ", ".join(sorted(rand["model"].astype(str).unique()))
        out.append(
            f"encoder weights: {RANDOM_INIT} for {models} (patch features from an untrained "
            "encoder; not comparable to the paper's ImageNet ResNet50)"
        )
    if "model selection" not in text:
        policies = sorted({str(p) for p in prov["model_selection"].dropna() if str(p)})
        if policies:
            out.append(f"model selection: {', '.join(policies)}")
    if "std" not in text and not _defined(per_fold).empty:
        kind = "sample std" if ddof == 1 else "std"
        out.append(f"std: {kind} (ddof={ddof}) over {runs_phrase(_defined(per_fold))}")
    runs = per_fold
    if ("cindex" not in per_fold.columns or per_fold.empty) and predictions is not None:
        runs = fold_cindex(predictions) if is_leaky(predictions) else per_fold
    leaky = leaky_note(runs)
    if leaky is not None and not any(n.startswith("leaky:") for n in out):
        out.append(leaky)
    out += [n for n in undefined_fold_notes(per_fold) if n not in out]
    return out


def _defined(per_fold: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``per_fold`` with a defined c-index (all rows when it has no cindex column)."""
    return per_fold[per_fold["cindex"].notna()] if "cindex" in per_fold.columns else per_fold


def undefined_cells(per_fold: pd.DataFrame) -> set[tuple[str, str]]:
    """(model, cohort) pairs with a fold whose c-index is undefined (NaN): their cells get †."""
    if "cindex" not in per_fold.columns:
        return set()
    bad = per_fold[per_fold["cindex"].isna()]
    return {(str(m), str(c)) for m, c in zip(bad["model"], bad["cohort"], strict=True)}


def _span(values: pd.Series) -> str:
    """'3' when all values are equal, else 'lo–hi'."""
    lo, hi = int(values.min()), int(values.max())
    return str(hi) if lo == hi else f"{lo}–{hi}"


def _why_undefined(fold: int, rows: pd.DataFrame, models: set[str]) -> str:
    """'fold 1 has no event among its 12 held-out cases' (+ the models when not all of them)."""
    cases = (
        f" its {_span(rows['n'])} held-out cases" if "n" in rows.columns else " its held-out cases"
    )
    if "n_events" not in rows.columns:
        text = f"fold {fold} has an undefined c-index"
    elif (rows["n_events"] == 0).all():
        text = f"fold {fold} has no event among{cases}"
    elif (rows["n_events"] > 0).all():
        text = f"fold {fold} has no comparable pair among{cases} (no event precedes another time)"
    else:
        text = f"fold {fold} has no event or no comparable pair among{cases}"
    hit = set(rows["model"].astype(str))
    if hit != models:
        text += f" (for {', '.join(sorted(hit))})"
    return text


def undefined_fold_clauses(per_fold: pd.DataFrame) -> dict[str, list[str]]:
    """{cohort: ['fold 1 has no event among its 12 held-out cases', ...]} for NaN c-index folds.

    ``per_fold`` as :func:`fold_cindex` returns it (n and n_events name the reason when present).
    """
    if "cindex" not in per_fold.columns or not per_fold["cindex"].isna().any():
        return {}
    out = {}
    for cohort in dict.fromkeys(per_fold["cohort"]):
        cf = per_fold[per_fold["cohort"] == cohort]
        bad = cf[cf["cindex"].isna()]
        if not bad.empty:
            models = set(cf["model"].astype(str))
            folds = sorted(set(bad["fold"]))
            out[str(cohort)] = [
                _why_undefined(int(k), bad[bad["fold"] == k], models) for k in folds
            ]
    return out


def undefined_fold_notes(per_fold: pd.DataFrame) -> list[str]:
    """One † note per cohort with folds whose c-index is undefined: which, why, how many are left.

    ``per_fold`` as :func:`fold_cindex` returns it; [] when every fold's c-index is defined.
    """
    notes = []
    for cohort, parts in undefined_fold_clauses(per_fold).items():
        cf = per_fold[per_fold["cohort"] == cohort]
        defined = cf[cf["cindex"].notna()].groupby("model")["fold"].nunique()
        defined = defined.reindex(cf["model"].unique(), fill_value=0)
        span = _span(defined)
        rest = (
            "no fold is left for mean ± std (—)"
            if defined.max() == 0
            else f"mean ± std over the other {span} fold{'' if span == '1' else 's'}"
        )
        notes.append(
            f"{UNDEFINED_MARK} {cohort}: {', '.join(parts)}, so "
            f"{'its' if len(parts) == 1 else 'their'} c-index is undefined "
            f"(NaN in the per-fold table); {rest}"
        )
    return notes


def provenance_rst(frame: pd.DataFrame) -> str:
    """reStructuredText line stating encoder weights, selection policy and folds of the data.

    ``frame`` has columns model, fold, encoder_weights and model_selection (predictions or the
    per-fold c-index table); report captions include the file this is written to.
    """
    _require_columns(frame, ["model", "fold", "encoder_weights", "model_selection"], "provenance")
    parts = []
    by_weights = frame.groupby(frame["encoder_weights"].astype(str))["model"]
    for weights, models in sorted(by_weights):
        names = ", ".join(sorted(set(models.astype(str))))
        what = {
            "none": "no pathology encoder",
            RANDOM_INIT: "untrained encoder, not the paper's ImageNet ResNet50",
        }.get(weights, "pretrained")
        parts.append(f"``{weights}`` ({what}) for {names}")
    policies = ", ".join(f"``{p}``" for p in sorted(set(frame["model_selection"].astype(str))))
    leaky = (
        " **Leaky:** some epochs were chosen on the held-out fold (``best_test_epoch_leaky``), "
        "so those c-indices are inflated; the tables print the gap to the last epoch."
        if is_leaky(frame)
        else ""
    )
    return (
        f"*Read from the predictions:* encoder weights {'; '.join(parts)}; "
        f"model selection {policies}; {runs_phrase(frame, long=True)} per model and "
        f"cohort.{leaky}\n"
    )


def _markdown(wide: pd.DataFrame, notes: Sequence[str]) -> str:
    """Render the wide table as a GitHub-flavoured Markdown table followed by note lines.

    Linear floor rows (model_catalog.LINEAR_FLOORS, last) sit under a "Linear floor" row.
    """
    header = ["Model", *map(str, wide.columns)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + [":---:"] * len(wide.columns)) + "|",
    ]
    first_floor = next((m for m in wide.index if m in LINEAR_FLOORS), None)
    for model, row in wide.iterrows():
        if model == first_floor:
            lines.append("| " + " | ".join(["*Linear floor*"] + [""] * len(wide.columns)) + " |")
        lines.append("| " + " | ".join([str(model), *map(str, row.tolist())]) + " |")
    if notes:
        lines.append("")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines) + "\n"


def write_cindex_tables(
    per_fold: pd.DataFrame,
    out_csv: str | os.PathLike[str],
    out_md: str | os.PathLike[str],
    *,
    model_order: Sequence[str],
    cohort_order: Sequence[str],
    notes: Sequence[str] = (),
    ddof: int = 1,
    decimals: int = 3,
    predictions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Write the long-form CSV and the paper-layout Markdown (best bold, second underlined).

    CSV columns: cohort, model, mean, std, n_folds, ddof. The Markdown ends with ``notes`` plus
    the notes :func:`derive_notes` adds from the data (random-init encoders are always stated),
    read from ``per_fold``'s provenance columns and, when given, from ``predictions``.
    Returns the long-form summary. Both files are written atomically. Linear floors are listed
    after the other models, under a "Linear floor" row.
    """
    model_order = [m for m in model_order if m not in LINEAR_FLOORS] + [
        m for m in model_order if m in LINEAR_FLOORS
    ]
    summary = summarize_cindex(
        per_fold, ddof=ddof, model_order=model_order, cohort_order=cohort_order, decimals=decimals
    )
    shown = per_fold[per_fold["model"].isin(model_order) & per_fold["cohort"].isin(cohort_order)]
    if predictions is not None:
        _require_columns(predictions, ["model", "cohort", "encoder_weights"], "predictions")
        predictions = predictions[
            predictions["model"].isin(model_order) & predictions["cohort"].isin(cohort_order)
        ]
    all_notes = derive_notes(shown, notes, ddof=ddof, predictions=predictions)
    wide = cindex_wide(
        summary,
        model_order=model_order,
        cohort_order=cohort_order,
        markup=True,
        decimals=decimals,
    )
    csv_text = summary[SUMMARY_COLUMNS].to_csv(index=False, float_format="%.6f")
    write_text_atomic(out_csv, csv_text)
    write_text_atomic(out_md, _markdown(wide, all_notes))
    return summary
