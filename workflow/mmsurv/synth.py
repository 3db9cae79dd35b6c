"""Write synthetic pyramidal slides in Aperio SVS layout (readable by openslide and tiffslide)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import tifffile

from mmsurv.io import atomic_path

__all__ = ["write_svs"]

#: Largest side of the untiled thumbnail written as the second IFD (Aperio layout).
THUMBNAIL_MAX_SIDE = 512


def _aperio_description(
    width: int, height: int, tile: int, quality: int, mpp: float | None, app_mag: float | None
) -> str:
    """Build an Aperio ImageDescription; AppMag/MPP fields are left out when None."""
    desc = (
        f"Aperio Image Library v12.0.15 \r\n"
        f"{width}x{height} [0,0 {width}x{height}] ({tile}x{tile}) JPEG/RGB Q={quality}"
    )
    if app_mag is not None:
        desc += f"|AppMag = {app_mag:g}"
    desc += "|StripeWidth = 2040|ScanScope ID = SYNTH|Filename = synthetic"
    if mpp is not None:
        desc += f"|MPP = {mpp:g}"
    return desc


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Downscale an RGB image with area averaging (what scanners' pyramids approximate)."""
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def write_svs(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    *,
    mpp: float | None,
    app_mag: float | None,
    tile: int = 256,
    downsamples: Sequence[int] = (1, 4, 16),
    quality: int = 90,
) -> None:
    """Write ``rgb`` as a tiled JPEG pyramid in Aperio SVS layout, atomically.

    Layout: IFD0 = level 0 (tiled, Aperio description), IFD1 = small untiled thumbnail
    (tiffslide drops pyramid level 1 without it), IFD2.. = reduced levels (tiled). Levels
    that would be smaller than one tile in both dimensions are skipped. Resolution tags
    are written only when ``mpp`` is known, so a slide without MPP really has none.
    """
    path = Path(path)
    rgb = np.ascontiguousarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"write_svs({path}): expected an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}"
        )
    if mpp is not None and not mpp > 0:
        raise ValueError(f"write_svs({path}): mpp must be > 0, got {mpp}")
    ds = sorted({int(d) for d in downsamples})
    if not ds or ds[0] != 1:
        raise ValueError(f"write_svs({path}): downsamples must start with 1, got {downsamples}")
    height, width = rgb.shape[:2]

    levels: list[tuple[int, np.ndarray]] = []
    for d in ds:
        w, h = width // d, height // d
        if d > 1 and w < tile and h < tile:
            continue
        levels.append((d, rgb if d == 1 else _resize(rgb, w, h)))

    scale = THUMBNAIL_MAX_SIDE / max(width, height)
    thumb = _resize(rgb, max(1, round(width * scale)), max(1, round(height * scale)))

    def res_kwargs(d: float) -> dict:
        if mpp is None:
            return {}
        px_per_cm = 1e4 / (mpp * d)
        return {"resolution": (px_per_cm, px_per_cm), "resolutionunit": "CENTIMETER"}

    common = {
        "photometric": "rgb",
        "compression": "jpeg",
        "compressionargs": {"level": quality},
        "metadata": None,
    }
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=False) as tif:
        desc0 = _aperio_description(width, height, tile, quality, mpp, app_mag)
        tif.write(levels[0][1], tile=(tile, tile), description=desc0, **res_kwargs(1), **common)
        tdesc = (
            f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}]"
            f" ({tile}x{tile}) -> {thumb.shape[1]}x{thumb.shape[0]} JPEG/RGB Q={quality}"
        )
        tif.write(thumb, description=tdesc, rowsperstrip=16, **common)
        for d, img in levels[1:]:
            desc = (
                f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}]"
                f" ({tile}x{tile}) -> {img.shape[1]}x{img.shape[0]} JPEG/RGB Q={quality}"
            )
            tif.write(img, tile=(tile, tile), description=desc, **res_kwargs(d), **common)
