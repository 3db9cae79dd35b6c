"""Kaplan-Meier figure of low vs high predicted risk (the paper's Figure 4), PNG and PDF."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: the workflow runs on cluster nodes without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from lifelines import KaplanMeierFitter  # noqa: E402
from lifelines.plotting import add_at_risk_counts  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mmsurv.evaluate.stats import SurvivalInputError, _as_bool, _check  # noqa: E402
from mmsurv.io import atomic_path  # noqa: E402

__all__ = ["format_p", "make_km_figure", "plot_km"]

LOW_COLOR = "#1f77b4"
HIGH_COLOR = "#d62728"


def format_p(p: float | None) -> str:
    """Format a p-value for a figure: 3 significant digits, scientific below 1e-3."""
    if p is None or not np.isfinite(p):
        return "n/a"
    if p <= 0:
        return "< 1e-300"  # underflow of the reported value, not an exact zero
    if p < 1e-3:
        return f"{p:.1e}"
    return f"{p:.3g}"


def make_km_figure(
    time: Any,
    event: Any,
    high_risk: Any,
    *,
    title: str,
    cutpoint: float,
    p_logrank: float,
    p_maxstat: float | None,
    subtitle: str | None = None,
) -> Figure:
    """Build the KM figure (two curves, censor ticks, at-risk table, p-values) and return it."""
    t, e, _ = _check(time, event, None)
    high = _as_bool(high_risk, "high_risk")
    if len(high) != len(t):
        raise SurvivalInputError(
            f"time and high_risk must have the same length, got {len(t)} and {len(high)}"
        )
    n_high = int(high.sum())
    n_low = len(high) - n_high
    if n_low == 0 or n_high == 0:
        raise SurvivalInputError(
            f"both risk groups need cases, got {n_low} low-risk and {n_high} high-risk"
        )

    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    fitters = []
    for mask, name, color in ((~high, "Low risk", LOW_COLOR), (high, "High risk", HIGH_COLOR)):
        kmf = KaplanMeierFitter(label=f"{name} (n={int(mask.sum())})")
        kmf.fit(t[mask], event_observed=e[mask])
        kmf.plot_survival_function(
            ax=ax,
            ci_show=False,
            show_censors=True,
            censor_styles={"marker": "|", "ms": 7, "mew": 1.2},
            color=color,
            linewidth=1.8,
        )
        fitters.append(kmf)

    ax.set_xlabel("Time (months)")
    ax.set_ylabel("Survival probability")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3, linewidth=0.6)
    ax.legend(loc="best", frameon=False)
    # p-values and cutpoint go above the axes, where they can never hide a curve
    parts = [f"log-rank p = {format_p(p_logrank)}"]
    if p_maxstat is not None:
        parts.append(f"maxstat p (Lau92) = {format_p(p_maxstat)}")
    parts.append(f"cutpoint (risk) = {cutpoint:.4g}")
    ax.set_title(",  ".join(parts), fontsize=9, color="0.25")
    fig.suptitle(title if subtitle is None else f"{title}\n{subtitle}", fontsize=11)
    add_at_risk_counts(*fitters, ax=ax, labels=["Low risk", "High risk"], rows_to_show=["At risk"])
    fig.tight_layout()
    return fig


def plot_km(
    time: Any,
    event: Any,
    high_risk: Any,
    *,
    title: str,
    cutpoint: float,
    p_logrank: float,
    p_maxstat: float | None,
    out_png: str,
    out_pdf: str,
    subtitle: str | None = None,
) -> None:
    """Write the low- vs high-risk KM figure as PNG (dpi 150) and PDF, each atomically."""
    fig = make_km_figure(
        time,
        event,
        high_risk,
        title=title,
        cutpoint=cutpoint,
        p_logrank=p_logrank,
        p_maxstat=p_maxstat,
        subtitle=subtitle,
    )
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
        with atomic_path(out_pdf) as tmp:
            fig.savefig(tmp, format="pdf", bbox_inches="tight")
    finally:
        plt.close(fig)
