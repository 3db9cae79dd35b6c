"""Markdown of the metrics summary (pooled c-index CI, td-AUC, IBS), one table per cohort."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mmsurv.evaluate.cindex_tables import MISSING_CELL, _cell
from mmsurv.evaluate.paper_tables import DISPLAY_NAMES

__all__ = ["metrics_markdown"]


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


def _fmt_num(x: float, decimals: int) -> str:
    """'0.731', or the missing-cell mark for NaN."""
    return MISSING_CELL if not np.isfinite(x) else f"{x:.{decimals}f}"
