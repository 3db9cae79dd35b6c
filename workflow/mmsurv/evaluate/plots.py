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

__all__ = [
    "HONEST_LABEL",
    "OPTIMISTIC_LABEL",
    "format_p",
    "make_km_figure",
    "make_km_two_ways_figure",
    "plot_km",
    "plot_km_two_ways",
]

LOW_COLOR = "#1f77b4"
HIGH_COLOR = "#d62728"
OPTIMISTIC_LABEL = "optimistic: cutpoint chosen on the test risks"
HONEST_LABEL = "honest: cutpoints learned on each fold's training cases"


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
    t, e, high = _groups(time, event, high_risk, allow_one_group=False)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    parts = [f"log-rank p = {format_p(p_logrank)}"]
    if p_maxstat is not None:
        parts.append(f"maxstat p (Lau92) = {format_p(p_maxstat)}")
    parts.append(f"cutpoint (risk) = {cutpoint:.4g}")
    _draw_km(ax, t, e, high, ",  ".join(parts))
    fig.suptitle(title if subtitle is None else f"{title}\n{subtitle}", fontsize=11)
    fig.tight_layout()
    return fig


def _groups(
    time: Any, event: Any, high_risk: Any, *, allow_one_group: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated (time, event, high) arrays; both groups must have cases unless allowed."""
    t, e, _ = _check(time, event, None)
    high = _as_bool(high_risk, "high_risk")
    if len(high) != len(t):
        raise SurvivalInputError(
            f"time and high_risk must have the same length, got {len(t)} and {len(high)}"
        )
    n_high = int(high.sum())
    n_low = len(high) - n_high
    if not allow_one_group and (n_low == 0 or n_high == 0):
        raise SurvivalInputError(
            f"both risk groups need cases, got {n_low} low-risk and {n_high} high-risk"
        )
    return t, e, high


def _draw_km(ax: Any, t: np.ndarray, e: np.ndarray, high: np.ndarray, header: str) -> None:
    """Draw the low/high KM curves (censor ticks, n per group, at-risk table) into `ax`."""
    fitters, labels = [], []
    for mask, name, color in ((~high, "Low risk", LOW_COLOR), (high, "High risk", HIGH_COLOR)):
        if not mask.any():  # the honest split may leave a group empty
            continue
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
        labels.append(name)
    ax.set_xlabel("Time (months)")
    ax.set_ylabel("Survival probability")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3, linewidth=0.6)
    ax.legend(loc="best", frameon=False)
    # p-values and cutpoint go above the axes, where they can never hide a curve
    ax.set_title(header, fontsize=9, color="0.25")
    add_at_risk_counts(*fitters, ax=ax, labels=labels, rows_to_show=["At risk"])


def make_km_two_ways_figure(
    time: Any,
    event: Any,
    high_optimistic: Any,
    high_honest: Any,
    *,
    title: str,
    cutpoint: float,
    p_maxstat: float | None,
    p_logrank: float,
    honest_cutpoints: dict[Any, float],
    honest_p_logrank: float | None,
    subtitle: str | None = None,
) -> Figure:
    """Two KM panels of the same held-out cases: left the cutpoint maxstat chose on their pooled
    risks (optimistic), right each fold's cutpoint from its training cases (honest)."""
    t, e, high_o = _groups(time, event, high_optimistic, allow_one_group=False)
    _, _, high_h = _groups(time, event, high_honest, allow_one_group=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.8, 5.9), sharey=True)
    p_ms = "" if p_maxstat is None else f"maxstat p (Lau92) = {format_p(p_maxstat)},  "
    _draw_km(
        left,
        t,
        e,
        high_o,
        f"{OPTIMISTIC_LABEL}\n{p_ms}log-rank p = {format_p(p_logrank)}"
        f",  cutpoint = {cutpoint:.4g}\nn high = {int(high_o.sum())} / n low = "
        f"{int((~high_o).sum())}",
    )
    cuts = ", ".join(f"{c:.3g}" for c in honest_cutpoints.values())
    _draw_km(
        right,
        t,
        e,
        high_h,
        f"{HONEST_LABEL}\nlog-rank p = {format_p(honest_p_logrank)}"
        f",  cutpoints by fold: {cuts}\nn high = {int(high_h.sum())} / n low = "
        f"{int((~high_h).sum())}",
    )
    right.set_ylabel("")
    fig.suptitle(title if subtitle is None else f"{title}\n{subtitle}", fontsize=11)
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
    _save_png_pdf(fig, out_png, out_pdf)


def _save_png_pdf(fig: Any, out_png: str, out_pdf: str) -> None:
    """Write `fig` as PNG (dpi 150) and PDF, each atomically, then close it."""
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
        with atomic_path(out_pdf) as tmp:
            fig.savefig(tmp, format="pdf", bbox_inches="tight")
    finally:
        plt.close(fig)


def plot_km_two_ways(
    time: Any,
    event: Any,
    high_optimistic: Any,
    high_honest: Any,
    *,
    out_png: str,
    out_pdf: str,
    **labels: Any,
) -> None:
    """Write the optimistic | honest KM figure as PNG (dpi 150) and PDF, each atomically.

    ``labels``: make_km_two_ways_figure's keyword arguments (title, cutpoints, p-values).
    """
    fig = make_km_two_ways_figure(time, event, high_optimistic, high_honest, **labels)
    _save_png_pdf(fig, out_png, out_pdf)
