"""C-index tables in the paper's layout: rows = models, columns = cohorts, mean ± std over folds."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmsurv.evaluate.stats import concordance_index
from mmsurv.io import write_text_atomic
from mmsurv.model_catalog import model_inputs

__all__ = [
    "DISPLAY_NAMES",
    "PAPER_TABLES",
    "PREDICTION_COLUMNS",
    "PaperTable",
    "cindex_wide",
    "derive_notes",
    "fold_cindex",
    "metrics_markdown",
    "paper_table",
    "provenance_rst",
    "read_published",
    "render_latex",
    "render_markdown",
    "summarize_cindex",
    "write_cindex_tables",
    "write_paper_table",
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
RANDOM_INIT = "random-init"
MISSING_CELL = "—"


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
    """Per-fold c-index (sksurv, higher risk = worse) for each cohort × model × fold.

    Returns columns cohort, model, fold, cindex, n, n_events, plus the provenance columns
    model_selection and encoder_weights (distinct values in the group, '; '-joined) so that
    tables written from it can state them.
    """
    _require_columns(predictions, PREDICTION_COLUMNS, "predictions")
    dup = predictions.duplicated(["cohort", "model", "case_id"], keep=False)
    if dup.any():
        first = predictions.loc[dup, ["cohort", "model", "case_id"]].iloc[0].tolist()
        raise ValueError(
            f"predictions hold {int(dup.sum())} rows for repeated (cohort, model, case_id), "
            f"e.g. {first}; each case must be scored once, by the fold that held it out"
        )
    rows = []
    for (cohort, model, fold), g in predictions.groupby(["cohort", "model", "fold"], sort=True):
        try:
            cidx = concordance_index(
                g["survival_months"].to_numpy(), g["event"].to_numpy(), g["risk"].to_numpy()
            )
        except ValueError as err:
            raise type(err)(f"cohort={cohort} model={model} fold={fold}: {err}") from err
        rows.append(
            {
                "cohort": cohort,
                "model": model,
                "fold": int(fold),
                "cindex": cidx,
                "n": len(g),
                "n_events": int(g["event"].astype(bool).sum()),
                "model_selection": _join_unique(g["model_selection"]),
                "encoder_weights": _join_unique(g["encoder_weights"]),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "cohort",
            "model",
            "fold",
            "cindex",
            "n",
            "n_events",
            "model_selection",
            "encoder_weights",
        ],
    )


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
    """Mean ± std of the per-fold c-index per model × cohort, long form in display order.

    Columns: cohort, model, mean, std (``ddof``; 1 = sample std over folds), n_folds, ddof and
    ``cell`` ("0.731 ± 0.034"). Models outside ``model_order`` are left out (the caller picks
    the rows, e.g. Table 1 vs Table 2); named models or cohorts without results raise.
    """
    _require_columns(per_fold, ["cohort", "model", "fold", "cindex"], "per_fold")
    models = _ordered(per_fold["model"].unique().tolist(), model_order, "model")
    cohorts = _ordered(per_fold["cohort"].unique().tolist(), cohort_order, "cohort")
    sub = per_fold[per_fold["model"].isin(models) & per_fold["cohort"].isin(cohorts)]
    agg = (
        sub.groupby(["cohort", "model"])["cindex"]
        .agg(mean="mean", std=lambda s: s.std(ddof=ddof), n_folds="count")
        .reset_index()
    )
    agg["ddof"] = ddof
    agg["cohort"] = pd.Categorical(agg["cohort"], categories=cohorts, ordered=True)
    agg["model"] = pd.Categorical(agg["model"], categories=models, ordered=True)
    agg = agg.sort_values(["cohort", "model"]).reset_index(drop=True)
    agg["cohort"] = agg["cohort"].astype(str)
    agg["model"] = agg["model"].astype(str)
    agg["cell"] = [_cell(m, s, decimals) for m, s in zip(agg["mean"], agg["std"], strict=True)]
    return agg[["cohort", "model", "mean", "std", "n_folds", "ddof", "cell"]]


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
    the model-selection policy when no note names it, and the std definition when none does.
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
    if "std" not in text:
        n_folds = per_fold.groupby(["cohort", "model"])["fold"].nunique()
        folds = sorted(n_folds.unique())
        nf = "/".join(map(str, folds))
        kind = "sample std" if ddof == 1 else "std"
        out.append(f"std: {kind} over {nf} folds (ddof={ddof})")
    return out


def _markdown(wide: pd.DataFrame, notes: Sequence[str]) -> str:
    """Render the wide table as a GitHub-flavoured Markdown table followed by note lines."""
    header = ["Model", *map(str, wide.columns)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + [":---:"] * len(wide.columns)) + "|",
    ]
    for model, row in wide.iterrows():
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
    Returns the long-form summary. Both files are written atomically.
    """
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
    csv_text = summary[["cohort", "model", "mean", "std", "n_folds", "ddof"]].to_csv(
        index=False, float_format="%.6f"
    )
    write_text_atomic(out_csv, csv_text)
    write_text_atomic(out_md, _markdown(wide, all_notes))
    return summary


# --------------------------------------------------------------------------------------------
# the paper's Table 1 (comparison) and Table 2 (ablation), with optional published numbers
# --------------------------------------------------------------------------------------------

DISPLAY_NAMES: dict[str, str] = {
    "snn": "SNN",
    "snn_trans": "SNNTrans",
    "attn_mil": "AttnMIL",
    "clam_sb": "CLAM",
    "transmil": "TransMIL",
    "porpoise": "Porpoise",
    "hfbsurv": "HFBSurv",
    "mcat": "MCAT",
    "dualtrans": "DualTrans",
    "ours": "Ours",
    "ours_wo_simme": "w/o SimMe",
    "ours_wo_bdca": "w/o BDCA",
    "ours_wo_ot": "w/o OT",
}


@dataclass(frozen=True)
class PaperTable:
    """Layout of one of the paper's c-index tables: which models, in which order, how shown."""

    key: str
    title: str
    models: tuple[str, ...]
    modality_columns: bool
    display: Mapping[str, str] = field(default_factory=dict)

    def name(self, model: str) -> str:
        """Display name of ``model`` in this table (the paper's spelling)."""
        return self.display.get(model, DISPLAY_NAMES.get(model, model))


PAPER_TABLES: dict[str, PaperTable] = {
    "table1": PaperTable(
        key="table1",
        title="Table 1: c-index of the comparison methods",
        models=(
            "snn",
            "snn_trans",
            "attn_mil",
            "clam_sb",
            "transmil",
            "porpoise",
            "hfbsurv",
            "mcat",
            "dualtrans",
            "ours",
        ),
        modality_columns=True,
    ),
    "table2": PaperTable(
        key="table2",
        title="Table 2: c-index of the ablations",
        models=("ours_wo_simme", "ours_wo_bdca", "ours_wo_ot", "ours"),
        modality_columns=False,
        display={"ours": "Ours (All components)"},
    ),
}
PUBLISHED_COLUMNS = ("model", "cohort", "mean", "std")
LONG_COLUMNS = [
    "table",
    "model",
    "display_name",
    "P",
    "G",
    "cohort",
    "mean",
    "std",
    "n_folds",
    "ddof",
    "rank",
    "published_column",
    "paper_mean",
    "paper_std",
    "delta",
]


def read_published(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Published c-index numbers (columns model, cohort, mean, std; model = our model id)."""
    table = pd.read_csv(path, comment="#", dtype={"model": str, "cohort": str})
    _require_columns(table, PUBLISHED_COLUMNS, f"published table {path}")
    for col in ("mean", "std"):
        if not pd.api.types.is_numeric_dtype(table[col]):
            raise ValueError(f"published table {path}: column {col} must be numeric")
    dup = table.duplicated(["model", "cohort"])
    if dup.any():
        raise ValueError(
            f"published table {path} repeats (model, cohort) "
            f"{table.loc[dup, ['model', 'cohort']].iloc[0].tolist()}"
        )
    return table


def paper_table(
    per_fold: pd.DataFrame,
    spec: PaperTable,
    *,
    configured_models: Sequence[str],
    cohort_order: Sequence[str],
    published: pd.DataFrame | None = None,
    published_map: Mapping[str, str] | None = None,
    ddof: int = 1,
    decimals: int = 3,
) -> pd.DataFrame:
    """Long form of one paper table: the spec's configured models × cohorts, in paper order.

    Columns LONG_COLUMNS: P/G mark the modalities a model uses, ``rank`` is 1 (best) / 2
    (second) / 0 on the displayed means of our models per cohort. With ``published`` and
    ``published_map`` (our cohort -> published column, e.g. TCGA-BLCA -> BLCA) the paper's
    mean/std and delta = ours - paper are filled where the paper has the model and cohort.
    """
    models = [m for m in spec.models if m in set(configured_models)]
    if published_map:
        unknown = sorted(set(published_map) - set(cohort_order))
        if unknown:
            raise ValueError(
                f"published cohort mapping names {unknown}, which are not configured cohorts "
                f"{list(cohort_order)}"
            )
    if not models:
        return pd.DataFrame(columns=LONG_COLUMNS)
    summary = summarize_cindex(
        per_fold, ddof=ddof, model_order=models, cohort_order=cohort_order, decimals=decimals
    )
    summary["rank"] = 0
    for cohort in cohort_order:
        sel = summary["cohort"] == cohort
        summary.loc[sel, "rank"] = display_ranks(summary.loc[sel, "mean"], decimals).to_numpy()
    summary["table"] = spec.key
    summary["display_name"] = summary["model"].map(spec.name)
    summary["P"] = summary["model"].map(lambda m: "path" in model_inputs(m))
    summary["G"] = summary["model"].map(lambda m: "omic" in model_inputs(m))
    pmap = dict(published_map or {}) if published is not None else {}
    summary["published_column"] = summary["cohort"].map(lambda c: pmap.get(c, ""))
    if published is not None and pmap:
        pub = published.rename(
            columns={"cohort": "published_column", "mean": "paper_mean", "std": "paper_std"}
        )[["model", "published_column", "paper_mean", "paper_std"]]
        summary = summary.merge(pub, on=["model", "published_column"], how="left")
    else:
        summary["paper_mean"] = np.nan
        summary["paper_std"] = np.nan
    summary["delta"] = summary["mean"] - summary["paper_mean"]
    return summary[LONG_COLUMNS].reset_index(drop=True)


def _has_published(long: pd.DataFrame) -> bool:
    """Whether any cohort of the table is mapped to a published column."""
    return bool((long["published_column"].astype(str) != "").any())


def _fmt_num(x: float, decimals: int) -> str:
    """'0.731', or the missing-cell mark for NaN."""
    return MISSING_CELL if not np.isfinite(x) else f"{x:.{decimals}f}"


def _fmt_delta(x: float, decimals: int) -> str:
    """Signed difference: '+0.012', '−0.045' (true minus sign), or the missing-cell mark."""
    if not np.isfinite(x):
        return MISSING_CELL
    text = f"{abs(x):.{decimals}f}"
    return ("−" if x < 0 and float(text) != 0 else "+") + text


def _pm(mean: float, std: float, decimals: int) -> str:
    """'0.731 ± 0.034' or the missing-cell mark when the mean is missing."""
    if not np.isfinite(mean):
        return MISSING_CELL
    return _cell(mean, std, decimals)


def _grid(
    long: pd.DataFrame, spec: PaperTable, cohorts: Sequence[str], decimals: int
) -> tuple[list[str], list[list[tuple[str, int]]]]:
    """Model display names and, per row, (text, rank) cells in column order, renderer-neutral."""
    pub = _has_published(long)
    models = list(dict.fromkeys(long["model"]))
    names, rows = [], []
    for model in models:
        m = long[long["model"] == model].set_index("cohort")
        names.append(spec.name(model))
        cells: list[tuple[str, int]] = []
        if spec.modality_columns:
            cells += [("✓" if bool(m["P"].iloc[0]) else "", 0)]
            cells += [("✓" if bool(m["G"].iloc[0]) else "", 0)]
        for cohort in cohorts:
            if cohort not in m.index:
                cells.append((MISSING_CELL, 0))
                if pub:
                    cells += [(MISSING_CELL, 0), (MISSING_CELL, 0)]
                continue
            r = m.loc[cohort]
            cells.append((_pm(r["mean"], r["std"], decimals), int(r["rank"])))
            if pub:
                cells.append((_pm(r["paper_mean"], r["paper_std"], decimals), 0))
                cells.append((_fmt_delta(r["delta"], decimals), 0))
        rows.append(cells)
    return names, rows


def render_markdown(
    long: pd.DataFrame,
    spec: PaperTable,
    *,
    cohort_order: Sequence[str],
    notes: Sequence[str] = (),
    decimals: int = 3,
) -> str:
    """GitHub Markdown of a paper table: best **bold**, second <u>underlined</u>, notes below."""
    pub = _has_published(long)
    header = ["Method"] + (["P", "G"] if spec.modality_columns else [])
    for cohort in cohort_order:
        header += [cohort] + ([f"{cohort} paper", f"{cohort} Δ"] if pub else [])
    lines = [f"**{spec.title}**", ""]
    if long.empty:
        lines.append(
            f"No model of this table is configured (training.models); it lists "
            f"{', '.join(spec.models)}."
        )
    else:
        n_mod = 2 if spec.modality_columns else 0
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join([":---"] + [":---:"] * (len(header) - 1)) + "|")
        names, rows = _grid(long, spec, cohort_order, decimals)
        for name, cells in zip(names, rows, strict=True):
            texts = [
                _MD_MARK[rank].format(text) if i >= n_mod else text
                for i, (text, rank) in enumerate(cells)
            ]
            lines.append("| " + " | ".join([name, *texts]) + " |")
    if notes:
        lines.append("")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines) + "\n"


_TEX_ESCAPE = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "−": "$-$",
    "–": "--",
    "—": "---",
    "✓": r"$\checkmark$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "×": r"$\times$",
}


def tex_escape(text: str) -> str:
    """Escape LaTeX specials and map the few non-ASCII symbols the tables use to math."""
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(text))


_TEX_MARK = {1: r"\textbf{{{}}}", 2: r"\underline{{{}}}", 0: "{}"}


def render_latex(
    long: pd.DataFrame,
    spec: PaperTable,
    *,
    cohort_order: Sequence[str],
    notes: Sequence[str] = (),
    decimals: int = 3,
    label: str | None = None,
) -> str:
    """A booktabs ``table`` of a paper table: best \\textbf, second \\underline, notes below.

    Needs ``\\usepackage{booktabs}`` and ``\\usepackage{amssymb}`` (for \\checkmark).
    """
    pub = _has_published(long)
    n_mod = 2 if spec.modality_columns else 0
    per = 3 if pub else 1
    n_cols = 1 + n_mod + per * len(cohort_order)
    out = [
        f"% {spec.title} -- written by mmsurv; needs \\usepackage{{booktabs}} and "
        "\\usepackage{amssymb}",
        r"\begin{table}[htbp]",
        r"  \centering",
        f"  \\caption{{{tex_escape(spec.title)}}}",
        f"  \\label{{{label or 'tab:' + spec.key}}}",
    ]
    if long.empty:
        out.append(
            f"  % no model of this table is configured (training.models): {', '.join(spec.models)}"
        )
    else:
        out.append(f"  \\begin{{tabular}}{{l{'c' * (n_cols - 1)}}}")
        out.append(r"    \toprule")
        lead = ["Method"] + (["P", "G"] if spec.modality_columns else [])
        first = 2 + n_mod  # first column of the cohorts (1-based)
        if pub:
            top = lead + [f"\\multicolumn{{3}}{{c}}{{{tex_escape(c)}}}" for c in cohort_order]
            rules = [
                f"\\cmidrule(lr){{{first + 3 * i}-{first + 3 * i + 2}}}"
                for i in range(len(cohort_order))
            ]
            sub = [""] * len(lead) + [r"ours & paper & $\Delta$"] * len(cohort_order)
        else:
            top = lead + [f"\\multicolumn{{{len(cohort_order)}}}{{c}}{{c-index}}"]
            rules = [f"\\cmidrule(lr){{{first}-{first + len(cohort_order) - 1}}}"]
            sub = [""] * len(lead) + [tex_escape(c) for c in cohort_order]
        out.append("    " + " & ".join(top) + r" \\")
        out.append("    " + " ".join(rules))
        out.append("    " + " & ".join(sub) + r" \\")
        out.append(r"    \midrule")
        names, rows = _grid(long, spec, cohort_order, decimals)
        for name, cells in zip(names, rows, strict=True):
            texts = [
                _TEX_MARK[rank].format(tex_escape(text)) if i >= n_mod else tex_escape(text)
                for i, (text, rank) in enumerate(cells)
            ]
            out.append("    " + " & ".join([tex_escape(name), *texts]) + r" \\")
        out.append(r"    \bottomrule")
        out.append(r"  \end{tabular}")
    if notes:
        out.append(r"  \par\smallskip\footnotesize")
        out.extend(f"  {tex_escape(n)}\\par" for n in notes)
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def write_paper_table(
    per_fold: pd.DataFrame,
    spec: PaperTable,
    *,
    out_csv: str | os.PathLike[str],
    out_md: str | os.PathLike[str],
    out_tex: str | os.PathLike[str],
    configured_models: Sequence[str],
    cohort_order: Sequence[str],
    published: pd.DataFrame | None = None,
    published_map: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    ddof: int = 1,
    decimals: int = 3,
) -> pd.DataFrame:
    """Write one paper table as long-form CSV, Markdown and LaTeX (atomically); return it.

    Notes: ``notes`` plus :func:`derive_notes` (random-init encoders, selection policy, std
    definition) and, with published numbers, where they come from and what delta means.
    """
    long = paper_table(
        per_fold,
        spec,
        configured_models=configured_models,
        cohort_order=cohort_order,
        published=published,
        published_map=published_map,
        ddof=ddof,
        decimals=decimals,
    )
    shown = per_fold[per_fold["model"].isin(long["model"]) & per_fold["cohort"].isin(cohort_order)]
    all_notes = derive_notes(shown, notes, ddof=ddof) if not long.empty else list(notes)
    all_notes.append(
        "bold: best mean per cohort; underlined: second best (ranked on the rounded means "
        "shown, our runs only)"
    )
    if _has_published(long):
        mapped = sorted(
            {(c, p) for c, p in zip(long["cohort"], long["published_column"], strict=True) if p}
        )
        all_notes.append(
            "paper: Zhang et al. 2025, J. East China Univ. Sci. Tech. 51(4), "
            f"{spec.title.split(':')[0]} (resources/published/); columns "
            + ", ".join(f"{c} → {p}" for c, p in mapped)
            + "; Δ = our mean − paper mean"
        )
        unmapped = [c for c in cohort_order if c not in dict(mapped)]
        if unmapped:
            all_notes.append(f"no published column mapped for {', '.join(unmapped)}")
    csv_text = long.to_csv(index=False, float_format="%.6f")
    write_text_atomic(out_csv, csv_text)
    kw = {"cohort_order": cohort_order, "notes": all_notes, "decimals": decimals}
    write_text_atomic(out_md, render_markdown(long, spec, **kw))
    write_text_atomic(out_tex, render_latex(long, spec, **kw))
    return long


# --------------------------------------------------------------------------------------------
# the metrics table and the data-derived provenance of report captions
# --------------------------------------------------------------------------------------------


def metrics_markdown(summary: pd.DataFrame, notes: Sequence[str] = (), decimals: int = 3) -> str:
    """Markdown of :func:`metrics.evaluate_predictions`'s summary, one table per cohort.

    Columns: pooled c-index [CI], td-AUC at each horizon and IBS as mean ± std over folds; a
    cell shows (k/n) when only k of n folds defined the value, and "—" when none did.
    """
    lines: list[str] = []
    for cohort in dict.fromkeys(summary["cohort"]):
        cs = summary[summary["cohort"] == cohort]
        horizons = cs.loc[cs["metric"] == "td_auc", ["horizon", "horizon_source"]]
        horizons = horizons.drop_duplicates("horizon").sort_values("horizon")
        level = cs.loc[cs["metric"] == "cindex_pooled", "ci_level"].dropna()
        pct = f"{100 * level.iloc[0]:g}%" if len(level) else "95%"
        header = [f"c-index pooled [{pct} CI]"]
        header += [f"AUC({h:.4g} mo)" for h in horizons["horizon"]]
        header += ["IBS"]
        lines += [f"### {cohort}", "", "| Model | " + " | ".join(header) + " |"]
        lines.append("|" + "|".join([":---"] + [":---:"] * len(header)) + "|")
        for model in dict.fromkeys(cs["model"]):
            ms = cs[cs["model"] == model]
            c = ms[ms["metric"] == "cindex_pooled"].iloc[0]
            cells = [
                f"{_fmt_num(c['value'], decimals)} [{_fmt_num(c['ci_low'], decimals)}, "
                f"{_fmt_num(c['ci_high'], decimals)}]"
            ]
            for h in horizons["horizon"]:
                cells.append(_fold_cell(ms[(ms["metric"] == "td_auc") & (ms["horizon"] == h)]))
            cells.append(_fold_cell(ms[ms["metric"] == "ibs"]))
            lines.append("| " + " | ".join([DISPLAY_NAMES.get(model, model), *cells]) + " |")
        sources = sorted(set(horizons["horizon_source"].dropna()))
        if sources:
            lines += ["", f"Horizons (months): {', '.join(sources)}."]
        lines.append("")
    if notes:
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines).rstrip("\n") + "\n"


def _fold_cell(rows: pd.DataFrame, decimals: int = 3) -> str:
    """'0.712 ± 0.046', with ' (k/n)' when only k of n folds defined it; '—' when none did."""
    if rows.empty or not np.isfinite(rows["value"].iloc[0]):
        return MISSING_CELL
    r = rows.iloc[0]
    text = _cell(r["value"], r["std"], decimals)
    if int(r["n_folds_defined"]) < int(r["n_folds"]):
        text += f" ({int(r['n_folds_defined'])}/{int(r['n_folds'])})"
    return text


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
    group = ["cohort", "model"] if "cohort" in frame.columns else ["model"]
    n_folds = sorted(set(frame.groupby(group)["fold"].nunique()))
    folds = "/".join(map(str, n_folds))
    return (
        f"*Read from the predictions:* encoder weights {'; '.join(parts)}; "
        f"model selection {policies}; {folds} cross-validation folds per model and cohort.\n"
    )
