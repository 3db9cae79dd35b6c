"""Which held-out cases get a heatmap: the highest- and lowest-risk ones of one seed's folds."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["choose_cases", "read_heldout_predictions"]

_COLUMNS = ["case_id", "fold", "seed", "risk", "survival_months", "event"]


def read_heldout_predictions(files: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Concatenate one seed's predictions.parquet files: one row per held-out case.

    Each row keeps the prediction file it came from (`predictions`), so the case's risk is that
    of the fold job that held it out. A case in two folds, or two seeds mixed, is refused.
    """
    if not files:
        raise ValueError("heatmaps: no predictions.parquet given")
    frames = []
    for f in files:
        if not Path(f).is_file():
            raise FileNotFoundError(f"heatmaps: predictions file not found: {f}")
        table = pd.read_parquet(f)
        missing = [c for c in _COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"{f}: predictions lack columns {missing}")
        if "modalities_used" in table.columns:
            # keep_unimodal: cases scored without pathology have no patches to draw
            table = table[table["modalities_used"].astype(str).str.contains("path")]
        frames.append(table[_COLUMNS].assign(predictions=str(f)))
    pred = pd.concat(frames, ignore_index=True)
    pred["case_id"] = pred["case_id"].astype(str)
    seeds = sorted(set(pred["seed"].astype(int)))
    if len(seeds) != 1:
        raise ValueError(f"heatmaps: predictions of one seed expected, got seeds {seeds}")
    dup = pred.loc[pred["case_id"].duplicated(), "case_id"].unique().tolist()
    if dup:
        raise ValueError(f"heatmaps: cases held out by more than one fold: {dup[:20]}")
    pred["event"] = pred["event"].astype(bool)
    return pred


def choose_cases(
    pred: pd.DataFrame,
    n_high: int,
    n_low: int,
    eligible: Callable[[str], bool] | None = None,
) -> pd.DataFrame:
    """The n_high highest- and n_low lowest-risk cases, ranked within their fold, highest first.

    Each fold's model has its own risk scale, so raw risks pooled over folds would draw every
    "high" case from one fold and every "low" one from another: cases are ranked by their risk's
    percentile among the candidates of their fold (`risk_pct_in_fold`), ties by raw risk, then
    case id. `eligible` filters the candidates (e.g. cases with a non-empty patch bag). With fewer
    candidates than n_high + n_low every candidate is drawn once: high risk first, the rest low.
    Adds `group` (high/low) and `rank` (1 = the most extreme of the group).
    """
    if n_high < 0 or n_low < 0:
        raise ValueError(f"heatmaps: n_high and n_low must be >= 0, got {n_high}, {n_low}")
    cand = pred if eligible is None else pred[[eligible(c) for c in pred["case_id"]]]
    if cand.empty:
        raise ValueError("heatmaps: no held-out case with a patch bag to draw")
    cand = cand.assign(risk_pct_in_fold=cand.groupby("fold")["risk"].rank(pct=True))
    order = ["risk_pct_in_fold", "risk", "case_id"]
    ranked = cand.sort_values(order, ascending=[False, False, True], kind="stable")
    high = ranked.head(n_high)
    rest = ranked.iloc[len(high) :]
    low = rest.sort_values(order, kind="stable").head(n_low)
    if len(high) + len(low) < n_high + n_low:
        log.warning(
            "heatmaps: %d candidate case(s) for %d high + %d low; each case is drawn once",
            len(cand), n_high, n_low,
        )  # fmt: skip
    high = high.assign(group="high", rank=range(1, len(high) + 1))
    low = low.assign(group="low", rank=range(1, len(low) + 1))
    # highest risk first overall: the low group reversed (its rank 1 = the lowest risk, last)
    chosen = pd.concat([high, low.iloc[::-1]], ignore_index=True)
    return chosen[["group", "rank", *_COLUMNS, "risk_pct_in_fold", "predictions"]]
