"""Bar chart of one model x cohort's attributions: gene families and the top genes."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from mmsurv.io import atomic_path  # noqa: E402

__all__ = ["attribution_bars"]

UP, DOWN, ABS = "#b2182b", "#2166ac", "#d9d9d9"  # raises risk, lowers risk, mean |attribution|


def _panel(ax: plt.Axes, labels: list[str], mean_abs: pd.Series, signed: pd.Series) -> None:
    """Grey bar = mean |attribution|; coloured bar = mean signed attribution (red = riskier)."""
    y = range(len(labels))
    ax.barh(y, mean_abs, color=ABS, height=0.8)
    ax.barh(y, signed, color=[UP if v > 0 else DOWN for v in signed], height=0.45)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()


def attribution_bars(
    families: pd.DataFrame,
    genes: pd.DataFrame,
    top_n: int,
    title: str,
    out_png: str | os.PathLike[str],
) -> None:
    """Families (sum over genes) and the top-N genes by mean |attribution|, written as PNG."""
    top = genes.nsmallest(top_n, "rank")
    height = max(3.0, 0.25 * max(len(top), len(families)) + 1.5)
    fig, (ax_f, ax_g) = plt.subplots(
        1, 2, figsize=(11, height), gridspec_kw={"width_ratios": [1, 1.3]}
    )
    _panel(
        ax_f,
        list(families["family"]),
        families["mean_abs_attribution"],
        families["mean_attribution"],
    )
    ax_f.set_title("gene families (sum over their genes)", fontsize=9)
    _panel(ax_g, list(top["column"]), top["mean_abs_attribution"], top["mean_attribution"])
    ax_g.set_title(f"top {len(top)} genes by mean |attribution|", fontsize=9)
    for ax in (ax_f, ax_g):
        ax.set_xlabel("IG attribution to risk (held-out cases)", fontsize=8)
    handles = [
        Patch(color=ABS, label="mean |attribution|"),
        Patch(color=UP, label="mean signed: raises risk"),
        Patch(color=DOWN, label="mean signed: lowers risk"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
