"""One figure per case: the per-patch scores over each slide's thumbnail, with scale bar."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar  # noqa: E402

__all__ = ["CMAP", "SlideHeat", "blend", "draw_case", "paint_scores", "scale_bar_um"]

CMAP = "viridis"  # perceptually uniform
ALPHA = 0.6
MAX_COLS = 3  # panels per row: a 2 x 3 grid for six gene families


@dataclass(frozen=True)
class SlideHeat:
    """What one slide of a case contributes to the figure."""

    slide_id: str
    thumbnail: np.ndarray  # (h, w, 3) uint8
    level0_size: tuple[int, int]  # (width, height)
    coords: np.ndarray  # (N, 2) level-0 top-left
    patch_size_level0: int
    scores: dict[str, np.ndarray]  # panel dataset name -> (N,)
    mpp: float | None


def paint_scores(
    shape: tuple[int, int],
    coords: np.ndarray,
    patch_size: float,
    values: np.ndarray,
    downsample: tuple[float, float],
    norm: Normalize,
) -> np.ndarray:
    """An RGBA overlay of the thumbnail's size: each patch a square in its score's colour."""
    overlay = np.zeros((*shape, 4), dtype=np.float32)
    colours = plt.get_cmap(CMAP)(norm(values))
    colours[:, 3] = ALPHA
    dx, dy = downsample
    h, w = shape
    for (x, y), colour in zip(coords, colours, strict=True):
        x0, y0 = int(x / dx), int(y / dy)
        x1 = min(w, max(x0 + 1, math.ceil((x + patch_size) / dx)))
        y1 = min(h, max(y0 + 1, math.ceil((y + patch_size) / dy)))
        overlay[y0:y1, x0:x1] = colour
    return overlay


def blend(thumbnail: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """The thumbnail with the RGBA overlay painted over it ("over" compositing), uint8 RGB.

    One image per panel instead of two stacked ones: matplotlib then resamples and composites
    a single image at each save (half the drawing time of a heatmap figure).
    """
    alpha = overlay[..., 3:4]
    out = thumbnail.astype(np.float32) / 255.0 * (1.0 - alpha) + overlay[..., :3] * alpha
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def scale_bar_um(width_um: float) -> float:
    """A round bar length (1, 2 or 5 × 10^k µm) near a fifth of the field's width."""
    target = width_um / 5
    base = 10 ** math.floor(math.log10(target))
    return max(s * base for s in (1, 2, 5) if s * base <= target)


def _draw_panel(
    ax: plt.Axes, fig: Figure, slide: SlideHeat, key: str, label: str, norm: Normalize
) -> None:
    """One slide x one panel: thumbnail, patch squares, colour bar, scale bar, titles."""
    thumb = slide.thumbnail
    h, w = thumb.shape[:2]
    ds = (slide.level0_size[0] / w, slide.level0_size[1] / h)
    overlay = paint_scores(
        (h, w), slide.coords, slide.patch_size_level0, slide.scores[key], ds, norm
    )
    ax.imshow(blend(thumb, overlay))
    ax.set_axis_off()
    ax.set_title(
        f"{slide.slide_id}: {label}" if label != "attention" else slide.slide_id, fontsize=9
    )
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=CMAP)
    bar_label = "attention (per patch)" if label == "attention" else f"attention: {label}"
    fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.02).set_label(bar_label, fontsize=8)
    if slide.mpp is None:
        ax.text(
            0.01, 0.01, "no MPP in the slide: no scale bar", transform=ax.transAxes,
            fontsize=7, color="black", backgroundcolor="white",
        )  # fmt: skip
        return
    um = scale_bar_um(slide.level0_size[0] * slide.mpp)
    text = f"{um / 1000:g} mm" if um >= 1000 else f"{um:g} µm"
    bar = AnchoredSizeBar(
        ax.transData, um / slide.mpp / ds[0], text, "lower left", pad=0.3, frameon=True,
        size_vertical=max(1.0, h / 150), fontproperties={"size": 7},
    )  # fmt: skip
    ax.add_artist(bar)


def draw_case(
    slides: Sequence[SlideHeat],
    panels: dict[str, str],
    title: str,
    caption: str,
) -> Figure:
    """The case's figure: per slide a block of panels (up to 3 a row), caption underneath.

    `panels`: dataset name -> label, in drawing order. Each panel's colour scale is shared by
    the case's slides (its min to max over the case), so slides of one case compare directly.
    """
    keys = list(panels)
    n_cols = min(MAX_COLS, len(keys))
    rows_per_slide = math.ceil(len(keys) / n_cols)
    n_rows = rows_per_slide * len(slides)
    aspect = max(s.thumbnail.shape[0] / s.thumbnail.shape[1] for s in slides)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(4.6 * n_cols, 4.0 * aspect * n_rows + 1.4),
        squeeze=False, layout="constrained",
    )  # fmt: skip
    norms = {}
    for key in keys:
        values = np.concatenate([s.scores[key] for s in slides])
        lo, hi = float(values.min()), float(values.max())
        norms[key] = Normalize(lo, hi if hi > lo else lo + 1e-12)
    for i, slide in enumerate(slides):
        for j, key in enumerate(keys):
            ax = axes[i * rows_per_slide + j // n_cols, j % n_cols]
            _draw_panel(ax, fig, slide, key, panels[key], norms[key])
        for j in range(len(keys), rows_per_slide * n_cols):
            axes[i * rows_per_slide + j // n_cols, j % n_cols].set_axis_off()
    width = max(60, int(36 * n_cols))  # characters that fit the figure's width
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in title.splitlines()), fontsize=10)
    fig.supxlabel(textwrap.fill(caption, width), fontsize=8)
    return fig
