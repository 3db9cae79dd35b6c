"""Tiling QC images: a slide's thumbnail with tissue, holes and tiles; a cohort's contact sheet."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from mmsurv.io import atomic_path
from mmsurv.tiling.wsi import TilingResult

log = logging.getLogger(__name__)


def save_qc_thumbnail(
    path_png: str | os.PathLike[str], thumb_rgb: np.ndarray, result: TilingResult
) -> None:
    """Save a QC PNG: tissue contours green, holes blue, kept tiles red (atomic write)."""
    path = Path(path_png)
    img = np.ascontiguousarray(thumb_rgb[..., :3], dtype=np.uint8).copy()
    mh, mw = result.tissue.mask.shape
    fx, fy = img.shape[1] / mw, img.shape[0] / mh

    # contours are at mask scale; tile rectangles are at level 0
    def scaled(cnt: np.ndarray) -> np.ndarray:
        return np.rint(cnt.astype(np.float64) * (fx, fy)).astype(np.int32)

    line = max(1, round(min(img.shape[:2]) / 300))
    ps0 = int(result.attrs["patch_size_level0"])
    tx, ty = result.thumb_downsample[0] / fx, result.thumb_downsample[1] / fy
    for x, y in np.asarray(result.coords):
        p0 = (int(round(x / tx)), int(round(y / ty)))
        p1 = (int(round((x + ps0) / tx)) - 1, int(round((y + ps0) / ty)) - 1)
        cv2.rectangle(img, p0, p1, (255, 0, 0), 1)
    cv2.drawContours(img, [scaled(c) for c in result.tissue.tissue_contours], -1, (0, 255, 0), line)
    holes = [scaled(h) for hs in result.tissue.hole_contours for h in hs]
    cv2.drawContours(img, holes, -1, (0, 0, 255), line)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode QC thumbnail for {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def qc_contact_sheet(
    thumbs: list[str | os.PathLike[str]],
    labels: list[str],
    out: str | os.PathLike[str],
    *,
    flagged: list[bool] | None = None,
    cell: int = 192,
    max_cols: int = 16,
    quality: int = 85,
) -> tuple[int, int]:
    """All QC thumbnails of a cohort in one JPEG grid (label under each), for the report.

    One image per cohort instead of one per slide keeps the HTML report small on a TCGA run
    (hundreds of slides); the per-slide PNGs stay on disk. `flagged` slides (e.g. no tile
    kept) get a red frame. Returns the sheet's (height, width).
    """
    if len(thumbs) != len(labels) or (flagged is not None and len(flagged) != len(thumbs)):
        raise ValueError(f"{len(thumbs)} thumbnails, {len(labels)} labels, flags {flagged}")
    flagged = flagged or [False] * len(thumbs)
    label_h, pad = 18, 4
    n = max(1, len(thumbs))
    cols = min(max_cols, max(1, int(np.ceil(np.sqrt(n)))))
    rows = int(np.ceil(n / cols))
    ch, cw = cell + label_h + 2 * pad, cell + 2 * pad
    sheet = np.full((rows * ch, cols * cw, 3), 255, np.uint8)
    if not thumbs:
        cv2.putText(sheet, "no slides", (pad, ch // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1)
    for i, (path, label, flag) in enumerate(zip(thumbs, labels, flagged, strict=True)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"QC thumbnail {path} (slide {label}) does not exist")
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"QC thumbnail {path} (slide {label}) is not a readable image")
        scale = cell / max(img.shape[:2])
        h, w = max(1, round(img.shape[0] * scale)), max(1, round(img.shape[1] * scale))
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        y0, x0 = (i // cols) * ch + pad, (i % cols) * cw + pad
        oy, ox = (cell - h) // 2, (cell - w) // 2
        sheet[y0 + oy : y0 + oy + h, x0 + ox : x0 + ox + w] = img
        if flag:
            cv2.rectangle(sheet, (x0 - 2, y0 - 2), (x0 + cell + 1, y0 + cell + 1), (0, 0, 255), 3)
        text = label if len(label) <= 30 else label[:13] + "..." + label[-14:]
        cv2.putText(
            sheet, text, (x0, y0 + cell + label_h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 0, 1,
            cv2.LINE_AA,
        )  # fmt: skip
    ok, buf = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"cannot encode the QC sheet {out}")
    with atomic_path(Path(out)) as tmp:
        tmp.write_bytes(buf.tobytes())
    return sheet.shape[0], sheet.shape[1]
