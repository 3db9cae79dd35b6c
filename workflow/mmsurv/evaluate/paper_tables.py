"""The paper's Table 1 (comparison) and Table 2 (ablation), with published numbers if given."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmsurv.evaluate.cindex_tables import (
    _MD_MARK,
    MISSING_CELL,
    UNDEFINED_MARK,
    _cell,
    _require_columns,
    derive_notes,
    display_ranks,
    summarize_cindex,
    undefined_cells,
)
from mmsurv.evaluate.runs import is_leaky
from mmsurv.io import write_text_atomic
from mmsurv.model_catalog import LINEAR_FLOORS, model_inputs

__all__ = [
    "BELOW_FLOOR_MARK",
    "DISPLAY_NAMES",
    "FLOOR_HEADING",
    "PAIRED_ALPHA",
    "PAIRED_MARK",
    "PAPER_TABLES",
    "PaperTable",
    "paired_note",
    "paper_table",
    "read_published",
    "render_latex",
    "render_markdown",
    "write_paper_table",
]

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
    "snn_clinical": "SNN + clinical",
    "porpoise_clinical": "Porpoise + clinical",
    "ours_clinical": "Ours + clinical",
    "coxnet_omic": "Coxnet (genes)",
    "coxnet_path": "Coxnet (mean patch)",
    "cox_clinical": "Cox (clinical)",
}
FLOOR_HEADING = "Linear floor"
BELOW_FLOOR_MARK = "‡"  # a comparison model's cell that does not beat its linear floor
# A cell whose runs differ from the reference (KM) model's: paired Wilcoxon p < PAIRED_ALPHA.
# Not † (UNDEFINED_MARK: a fold's c-index undefined) nor ‡: the next footnote symbol.
PAIRED_MARK = "§"
PAIRED_ALPHA = 0.05
PAIRED_INPUT_COLUMNS = ("cohort", "model", "reference", "n_runs", "p_value")


@dataclass(frozen=True)
class PaperTable:
    """Layout of one of the paper's c-index tables: which models, in which order, how shown."""

    key: str
    title: str
    models: tuple[str, ...]
    modality_columns: bool
    display: Mapping[str, str] = field(default_factory=dict)
    floors: tuple[str, ...] = ()  # linear floors, shown after the models under FLOOR_HEADING
    not_in_paper: tuple[str, ...] = ()  # models of `models` the paper does not report

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
            "snn_clinical",
            "attn_mil",
            "clam_sb",
            "transmil",
            "porpoise",
            "porpoise_clinical",
            "hfbsurv",
            "mcat",
            "dualtrans",
            "ours",
        ),
        modality_columns=True,
        floors=LINEAR_FLOORS,
        not_in_paper=("snn_clinical", "porpoise_clinical"),
    ),
    "table2": PaperTable(
        key="table2",
        title="Table 2: c-index of the ablations",
        models=("ours_wo_simme", "ours_wo_bdca", "ours_wo_ot", "ours", "ours_clinical"),
        modality_columns=False,
        display={"ours": "Ours (All components)"},
        not_in_paper=("ours_clinical",),
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
    "n_seeds",
    "n_runs",
    "ddof",
    "model_selection",
    "rank",
    "published_column",
    "paper_mean",
    "paper_std",
    "delta",
    "group",
    "below_floor",
]
PAIRED_LONG_COLUMNS = ["paired_reference", "paired_n_runs", "paired_p", "paired_significant"]
GROUPS = ("comparison", "linear floor")


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
    paired: pd.DataFrame | None = None,
    alpha: float = PAIRED_ALPHA,
) -> pd.DataFrame:
    """Long form of one paper table: the spec's configured models × cohorts, in paper order.

    Columns LONG_COLUMNS: P/G mark the modalities a model uses, ``rank`` is 1 (best) / 2
    (second) / 0 on the displayed means of our models per cohort. With ``published`` and
    ``published_map`` (our cohort -> published column, e.g. TCGA-BLCA -> BLCA) the paper's
    mean/std and delta = ours - paper are filled where the paper has the model and cohort.
    With ``paired`` (tables/paired.csv: each model vs the KM model) PAIRED_LONG_COLUMNS follow:
    the reference, the paired runs, the Wilcoxon p and whether p < ``alpha`` (§ in the cell).
    """
    columns = LONG_COLUMNS + (PAIRED_LONG_COLUMNS if paired is not None else [])
    floors = [m for m in spec.floors if m in set(configured_models)]
    models = [m for m in spec.models if m in set(configured_models)] + floors
    if published_map:
        unknown = sorted(set(published_map) - set(cohort_order))
        if unknown:
            raise ValueError(
                f"published cohort mapping names {unknown}, which are not configured cohorts "
                f"{list(cohort_order)}"
            )
    if not models:
        return pd.DataFrame(columns=columns)
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
    summary["group"] = np.where(summary["model"].isin(floors), GROUPS[1], GROUPS[0])
    summary["below_floor"] = _below_floor(summary, decimals)
    if paired is not None:
        summary = _with_paired(summary, paired, alpha)
    return summary[columns].reset_index(drop=True)


def _with_paired(summary: pd.DataFrame, paired: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """``summary`` with PAIRED_LONG_COLUMNS from the paired table (NaN p for the reference)."""
    _require_columns(paired, PAIRED_INPUT_COLUMNS, "paired table")
    refs = sorted(set(paired["reference"].astype(str)))
    if len(refs) > 1:
        raise ValueError(f"paired table: one reference model expected, got {refs}")
    dup = paired.duplicated(["cohort", "model"])
    if dup.any():
        raise ValueError(
            "paired table repeats (cohort, model) "
            f"{paired.loc[dup, ['cohort', 'model']].iloc[0].tolist()}"
        )
    sub = paired[["cohort", "model", "n_runs", "p_value"]].rename(
        columns={"n_runs": "paired_n_runs", "p_value": "paired_p"}
    )
    sub = sub.astype({"cohort": str, "model": str})
    out = summary.merge(sub, on=["cohort", "model"], how="left")
    out["paired_reference"] = refs[0] if refs else ""
    out["paired_n_runs"] = out["paired_n_runs"].astype("Int64")
    out["paired_p"] = out["paired_p"].astype(float)
    out["paired_significant"] = (out["paired_p"] < alpha).fillna(False).astype(bool)
    return out


def _own_floors(model: str, floors: Collection[str]) -> list[str]:
    """The floors that read only inputs `model` reads too (coxnet_omic for a genomics model)."""
    mine = model_inputs(model)
    return [f for f in floors if model_inputs(f) <= mine]


def _below_floor(summary: pd.DataFrame, decimals: int) -> pd.Series:
    """True where a comparison model's displayed mean is at or below its best own floor's."""
    shown = summary["mean"].round(decimals)
    floor_rows = summary[summary["group"] == GROUPS[1]]
    best = dict(zip(zip(floor_rows["model"], floor_rows["cohort"], strict=True),
                    shown[floor_rows.index], strict=True))  # fmt: skip
    out = pd.Series(False, index=summary.index)
    floors = list(floor_rows["model"].unique())
    for i, row in summary[summary["group"] == GROUPS[0]].iterrows():
        own = [best[(f, row["cohort"])] for f in _own_floors(row["model"], floors)
               if (f, row["cohort"]) in best and np.isfinite(best[(f, row["cohort"])])]  # fmt: skip
        out[i] = bool(own) and np.isfinite(shown[i]) and shown[i] <= max(own)
    return out


def floor_note(long: pd.DataFrame, spec: PaperTable) -> list[str]:
    """Notes on the linear floor rows and the comparison cells that do not beat their floor."""
    if not (long["group"] == GROUPS[1]).any():
        return []
    notes = [
        f"{FLOOR_HEADING}: scikit-survival Cox models on the training folds only (Coxnet: "
        "elastic net, alpha by an inner CV; Cox (clinical): ridge) — a deep model should beat "
        "the floor on its own inputs"
    ]
    low = long[long["below_floor"].astype(bool)]
    if len(low):
        cells = ", ".join(f"{spec.name(m)} ({c})" for m, c in zip(low["model"], low["cohort"],
                                                                   strict=True))  # fmt: skip
        notes.append(
            f"{BELOW_FLOOR_MARK} not above its linear floor (the best Coxnet on the model's own "
            f"inputs, means as shown): {cells}"
        )
    return notes


def _min_exact_p(n_runs: int) -> float:
    """Smallest exact two-sided Wilcoxon signed-rank p with ``n_runs`` pairs: 2 / 2**n."""
    return 2.0 / 2.0**n_runs


def paired_note(
    long: pd.DataFrame,
    spec: PaperTable,
    alpha: float = PAIRED_ALPHA,
    level: float = 0.95,
) -> list[str]:
    """The § note: the paired test against the KM model, and when too few runs can reach p."""
    if "paired_p" not in long.columns or long.empty:
        return []
    tested = long[long["paired_n_runs"].notna() & (long["paired_n_runs"].fillna(0) > 0)]
    if tested.empty:
        return []
    ref = str(tested["paired_reference"].iloc[0])
    n_runs = sorted({int(n) for n in tested["paired_n_runs"]})
    grid = {(int(f), int(s)) for f, s in zip(tested["n_folds"], tested["n_seeds"], strict=True)}
    (f, s), *rest = sorted(grid)
    if len(n_runs) == 1 and not rest and f * s == n_runs[0]:
        runs = f"the {f} folds × {s} seed{'s' if s != 1 else ''} = {n_runs[0]} runs"
    else:
        span = str(n_runs[0]) if len(n_runs) == 1 else f"{n_runs[0]}–{n_runs[-1]}"
        runs = f"the paired fold × seed runs ({span} per cohort)"
    note = (
        f"{PAIRED_MARK} paired difference to {spec.name(ref)} ({ref}, evaluation.km_model) "
        f"with p < {alpha:g}: two-sided Wilcoxon signed-rank test over {runs}; Δ and "
        f"{level:.0%} paired-bootstrap CI in tables/paired.md"
    )
    short = tested[[_min_exact_p(int(n)) >= alpha for n in tested["paired_n_runs"]]]
    if len(short) == len(tested):
        n = int(short["paired_n_runs"].max())
        note += (
            f"; with {n} runs no difference can reach p < {alpha:g} (smallest two-sided p "
            f"{_min_exact_p(n):.4g}); repeated seeds are needed"
        )
    elif len(short):
        cohorts = ", ".join(dict.fromkeys(short["cohort"]))
        note += (
            f"; in {cohorts} (≤ {int(short['paired_n_runs'].max())} runs) no difference can "
            f"reach p < {alpha:g}; repeated seeds are needed"
        )
    elif not tested["paired_significant"].any():
        note += f"; no difference reaches p < {alpha:g}"
    return [note]


def _has_published(long: pd.DataFrame) -> bool:
    """Whether any cohort of the table is mapped to a published column."""
    return bool((long["published_column"].astype(str) != "").any())


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
    long: pd.DataFrame,
    spec: PaperTable,
    cohorts: Sequence[str],
    decimals: int,
    flagged: Collection[tuple[str, str]] = (),
) -> tuple[list[str], list[list[tuple[str, int]]], int]:
    """Model display names, per row (text, rank) cells in column order, and the first floor row.

    Our cells of the (model, cohort) pairs in ``flagged`` end in † (a fold's c-index undefined),
    those of a comparison model not above its linear floor in ‡, those that differ from the KM
    model (paired p < alpha, column paired_significant) in §. The floor rows come last; the
    third value is the index of the first (len(names) when there is none).
    """
    pub = _has_published(long)
    models = list(dict.fromkeys(long["model"]))
    floors = set(long.loc[long["group"] == GROUPS[1], "model"])
    first_floor = next((i for i, m in enumerate(models) if m in floors), len(models))
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
            mark = UNDEFINED_MARK if (model, cohort) in flagged else ""
            mark += BELOW_FLOOR_MARK if bool(r["below_floor"]) else ""
            mark += PAIRED_MARK if bool(r.get("paired_significant", False)) else ""
            cells.append((_pm(r["mean"], r["std"], decimals) + mark, int(r["rank"])))
            if pub:
                cells.append((_pm(r["paper_mean"], r["paper_std"], decimals), 0))
                cells.append((_fmt_delta(r["delta"], decimals), 0))
        rows.append(cells)
    return names, rows, first_floor


def render_markdown(
    long: pd.DataFrame,
    spec: PaperTable,
    *,
    cohort_order: Sequence[str],
    notes: Sequence[str] = (),
    decimals: int = 3,
    flagged: Collection[tuple[str, str]] = (),
) -> str:
    """GitHub Markdown of a paper table: best **bold**, second <u>underlined</u>, notes below.

    ``flagged``: (model, cohort) cells to mark † (see :func:`cindex_tables.undefined_cells`).
    """
    pub = _has_published(long)
    header = ["Method"] + (["P", "G"] if spec.modality_columns else [])
    for cohort in cohort_order:
        header += [cohort] + ([f"{cohort} paper", f"{cohort} Δ"] if pub else [])
    lines = [f"**{spec.title}{_leaky_caption(long)}**", ""]
    if long.empty:
        lines.append(
            f"No model of this table is configured (training.models); it lists "
            f"{', '.join(spec.models)}."
        )
    else:
        n_mod = 2 if spec.modality_columns else 0
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join([":---"] + [":---:"] * (len(header) - 1)) + "|")
        names, rows, first_floor = _grid(long, spec, cohort_order, decimals, flagged)
        for k, (name, cells) in enumerate(zip(names, rows, strict=True)):
            texts = [
                _MD_MARK[rank].format(text) if i >= n_mod else text
                for i, (text, rank) in enumerate(cells)
            ]
            if k == first_floor:
                lines.append("| " + " | ".join([f"*{FLOOR_HEADING}*"] + [""] * len(cells)) + " |")
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
    "<": "$<$",  # text-mode < prints ¡ in the default OT1 font encoding
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "×": r"$\times$",
    "†": r"$^{\dagger}$",
    "‡": r"$^{\ddagger}$",
    "§": r"$^{\S}$",
}


def tex_escape(text: str) -> str:
    """Escape LaTeX specials and map the few non-ASCII symbols the tables use to math."""
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(text))


_TEX_MARK = {1: r"\textbf{{{}}}", 2: r"\underline{{{}}}", 0: "{}"}


def _leaky_caption(long: pd.DataFrame) -> str:
    """' (leaky: epochs chosen on the held-out fold)' when any row's runs chose so, else ''."""
    if "model_selection" in long.columns and is_leaky(long):
        return " (leaky: epochs chosen on the held-out fold)"
    return ""


def render_latex(
    long: pd.DataFrame,
    spec: PaperTable,
    *,
    cohort_order: Sequence[str],
    notes: Sequence[str] = (),
    decimals: int = 3,
    label: str | None = None,
    flagged: Collection[tuple[str, str]] = (),
) -> str:
    """A booktabs ``table`` of a paper table: best \\textbf, second \\underline, notes below.

    ``flagged`` as :func:`render_markdown`. Needs ``\\usepackage{booktabs}`` and
    ``\\usepackage{amssymb}`` (for \\checkmark).
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
        f"  \\caption{{{tex_escape(spec.title + _leaky_caption(long))}}}",
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
        names, rows, first_floor = _grid(long, spec, cohort_order, decimals, flagged)
        for k, (name, cells) in enumerate(zip(names, rows, strict=True)):
            texts = [
                _TEX_MARK[rank].format(tex_escape(text)) if i >= n_mod else tex_escape(text)
                for i, (text, rank) in enumerate(cells)
            ]
            if k == first_floor:
                out += [r"    \midrule"] if k else []
                heading = f"\\textit{{{FLOOR_HEADING}}}"
                out.append(f"    \\multicolumn{{{n_cols}}}{{l}}{{{heading}}} \\\\")
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
    paired: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Write one paper table as long-form CSV, Markdown and LaTeX (atomically); return it.

    Notes: ``notes`` plus :func:`derive_notes` (random-init encoders, selection policy, std
    definition, † folds with an undefined c-index), with published numbers where they come
    from and what delta means, and with ``paired`` (tables/paired.csv) the § test note.
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
        paired=paired,
    )
    shown = per_fold[per_fold["model"].isin(long["model"]) & per_fold["cohort"].isin(cohort_order)]
    all_notes = derive_notes(shown, notes, ddof=ddof) if not long.empty else list(notes)
    all_notes += floor_note(long, spec) if not long.empty else []
    level = (
        float(paired["ci_level"].iloc[0])
        if paired is not None and "ci_level" in paired.columns and len(paired)
        else 0.95
    )
    all_notes += paired_note(long, spec, level=level)
    all_notes.append(
        "bold: best mean per cohort; underlined: second best (ranked on the rounded means "
        "shown, our runs only"
        + (", linear floors included)" if (long["group"] == GROUPS[1]).any() else ")")
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
    kw = {
        "cohort_order": cohort_order,
        "notes": all_notes,
        "decimals": decimals,
        "flagged": undefined_cells(shown),
    }
    write_text_atomic(out_md, render_markdown(long, spec, **kw))
    write_text_atomic(out_tex, render_latex(long, spec, **kw))
    return long
