"""mmsurv.evaluate.plots: the KM figure renders, is written atomically and labels its groups."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest

from mmsurv.evaluate.plots import format_p, make_km_figure, plot_km
from mmsurv.evaluate.stats import SurvivalInputError, km_groups


def _cohort(n: int = 150, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    t_event = rng.exponential(40 * np.exp(-0.8 * z))
    t_cens = rng.uniform(0, 120, n)
    return np.minimum(t_event, t_cens), t_event <= t_cens, z + rng.normal(0, 0.5, n)


def test_plot_km_writes_png_and_pdf(tmp_path: Path) -> None:
    time, event, risk = _cohort()
    res = km_groups(time, event, risk)
    png, pdf = tmp_path / "fig" / "km_BLCA.png", tmp_path / "fig" / "km_BLCA.pdf"
    plot_km(
        time,
        event,
        risk > res["cutpoint"],
        title="BLCA",
        subtitle="pooled out-of-fold risk",
        cutpoint=res["cutpoint"],
        p_logrank=res["logrank_p"],
        p_maxstat=res["p_maxstat_lau92"],
        out_png=str(png),
        out_pdf=str(pdf),
    )
    assert png.stat().st_size > 20_000
    image = mpimg.imread(png)
    assert image.ndim == 3 and image.shape[0] > 500 and image.shape[1] > 500
    assert image.std() > 0.05  # not a blank canvas
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in png.parent.iterdir()) == ["km_BLCA.pdf", "km_BLCA.png"]
    assert plt.get_fignums() == []  # the figure is closed


def test_km_figure_has_two_labelled_curves() -> None:
    time, event, risk = _cohort(seed=1)
    high = risk > 0.3
    fig = make_km_figure(
        time, event, high, title="LUAD", cutpoint=0.3, p_logrank=2.2e-5, p_maxstat=None
    )
    ax = fig.axes[0]
    curves = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert len(curves) == 2
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"Low risk (n={int((~high).sum())})", f"High risk (n={int(high.sum())})"]
    assert ax.get_xlabel() == "Time (months)"
    assert ax.get_ylabel() == "Survival probability"
    assert "log-rank p = 2.2e-05" in ax.get_title()
    assert "maxstat" not in ax.get_title()  # no maxstat p given
    assert "cutpoint (risk) = 0.3" in ax.get_title()
    # the at-risk table adds axes below the plot
    assert len(fig.axes) > 1
    plt.close(fig)


def test_km_figure_rejects_bad_groups() -> None:
    time, event, _ = _cohort(n=30)
    common = {"title": "x", "cutpoint": 0.0, "p_logrank": 0.5, "p_maxstat": 0.5}
    with pytest.raises(SurvivalInputError, match="0 low-risk and 30 high-risk"):
        make_km_figure(time, event, np.ones(30, bool), **common)
    with pytest.raises(SurvivalInputError, match="same length, got 30 and 29"):
        make_km_figure(time, event, np.ones(29, bool), **common)


@pytest.mark.parametrize(
    ("p", "text"),
    [(0.5, "0.5"), (0.04123, "0.0412"), (6.7e-11, "6.7e-11"), (0.0, "< 1e-300"), (None, "n/a")],
)
def test_format_p(p: float | None, text: str) -> None:
    assert format_p(p) == text
