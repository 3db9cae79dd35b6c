"""Markdown of the metrics summary (pooled c-index CI, td-AUC, IBS), one table per cohort."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from mmsurv.evaluate.cindex_tables import (
    MISSING_CELL,
    UNDEFINED_MARK,
    _cell,
    undefined_cells,
    undefined_fold_clauses,
)
from mmsurv.evaluate.paper_tables import DISPLAY_NAMES

__all__ = ["metrics_markdown", "no_event_folds"]


def no_event_folds(predictions: pd.DataFrame) -> tuple[set[tuple[str, str]], list[str]]:
    """(model, cohort) pairs with a held-out fold without an event, and one † note per cohort.

    Such a fold defines no td-AUC and no IBS; the pooled c-index still uses all its cases.
    """
    once = predictions.drop_duplicates(["cohort", "model", "fold", "case_id"])  # seeds: once
    folds = (
        once.assign(event=once["event"].astype(bool))
        .groupby(["cohort", "model", "fold"], sort=True)["event"]
        .agg(n="size", n_events="sum")
        .reset_index()
    )
    folds["cindex"] = np.where(folds["n_events"] > 0, 0.0, np.nan)  # NaN marks no event
    notes = [
        f"{UNDEFINED_MARK} {cohort}: {', '.join(parts)}, so td-AUC and IBS are undefined "
        f"{'there' if len(parts) == 1 else 'in those folds'} (NaN in the per-fold TSV); "
        "mean ± std over the other folds, shown (k/n); the pooled c-index uses every case"
        for cohort, parts in undefined_fold_clauses(folds).items()
    ]
    return undefined_cells(folds), notes


def metrics_markdown(
    summary: pd.DataFrame,
    notes: Sequence[str] = (),
    decimals: int = 3,
    flagged: Collection[tuple[str, str]] = (),
) -> str:
    """Markdown of :func:`metrics.evaluate_predictions`'s summary, one table per cohort.

    Columns: pooled c-index [CI], td-AUC at each horizon and IBS as mean ± std over folds; a
    cell shows (k/n) when only k of n folds defined the value, and "—" when none did. The
    td-AUC and IBS cells of the (model, cohort) pairs in ``flagged`` end in † (a held-out fold
    without an event, see :func:`no_event_folds`).
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
            mark = UNDEFINED_MARK if (str(model), str(cohort)) in flagged else ""
            for h in horizons["horizon"]:
                td = ms[(ms["metric"] == "td_auc") & (ms["horizon"] == h)]
                cells.append(_fold_cell(td) + mark)
            cells.append(_fold_cell(ms[ms["metric"] == "ibs"]) + mark)
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


def _fmt_num(x: float, decimals: int) -> str:
    """'0.731', or the missing-cell mark for NaN."""
    return MISSING_CELL if not np.isfinite(x) else f"{x:.{decimals}f}"
