"""QuPath interop: tissue contours and (top-attention) patches as GeoJSON at level-0 pixels.

QuPath (>= 0.3) imports these files by File > Import objects or drag and drop onto the slide:
coordinates are level-0 pixels with the origin at the top-left, and each feature's
`properties` carry QuPath's `objectType` and `classification`. Rings are closed, exteriors
counter-clockwise and holes clockwise (RFC 7946, signed area of the coordinates as written).
Nothing is clipped: a polygon that leaves the slide is a bug upstream and raises.
Tissue vertices follow cv2's pixel-centre trace of the mask, so a region joined only by a
one-pixel neck gives a self-touching ring: QuPath draws it, `shapely.make_valid` repairs it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmsurv.io import atomic_path

__all__ = [
    "TISSUE_COLOR",
    "PATCH_COLOR",
    "SlideBoundsError",
    "tissue_geojson",
    "patches_geojson",
    "write_geojson",
]

#: Class colours (RGB) as in the QC thumbnail: tissue green, patches red.
TISSUE_COLOR: tuple[int, int, int] = (0, 200, 0)
PATCH_COLOR: tuple[int, int, int] = (220, 0, 0)

_DECIMALS = 2  # level-0 pixels; sub-pixel precision is noise at any magnification


class SlideBoundsError(ValueError):
    """A polygon written for QuPath would lie outside the slide's level-0 extent."""


def _signed_area(ring: np.ndarray) -> float:
    """Shoelace area of an open ring (positive = counter-clockwise in x-right, y-up terms)."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _drop_straight_points(pts: np.ndarray) -> np.ndarray:
    """Remove duplicate points and points mid-way on a straight run; the shape is unchanged."""
    keep = np.ones(len(pts), bool)
    keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
    pts = pts[keep]
    if len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
        pts = pts[:-1]
    if len(pts) < 4:
        return pts
    prev, nxt = np.roll(pts, 1, axis=0) - pts, np.roll(pts, -1, axis=0) - pts
    cross = prev[:, 0] * nxt[:, 1] - prev[:, 1] * nxt[:, 0]
    straight = (cross == 0) & (np.einsum("ij,ij->i", prev, nxt) < 0)
    return pts[~straight] if (~straight).sum() >= 3 else pts


def _ring(
    contour: np.ndarray, downsample: tuple[float, float], *, exterior: bool
) -> list[list[float]] | None:
    """A cv2 contour (mask pixels) as a closed GeoJSON ring in level-0 pixel centres, or None.

    None when the contour encloses no area (a line or a point), which is not a polygon.
    """
    pts = np.asarray(contour, dtype=np.int64).reshape(-1, 2)
    pts = _drop_straight_points(pts)
    if len(pts) < 3:
        return None
    ring = (pts.astype(np.float64) + 0.5) * np.asarray(downsample, np.float64)
    ring = np.round(ring, _DECIMALS)
    area = _signed_area(ring)
    if area == 0:
        return None
    if (area > 0) != exterior:
        ring = ring[::-1]
    closed = np.vstack([ring, ring[:1]])
    return [[float(x), float(y)] for x, y in closed]


def _check_inside(
    rings: Sequence[Sequence[Sequence[float]]],
    slide_size: tuple[float, float],
    slide: str,
    what: str,
) -> None:
    """Raise SlideBoundsError naming the slide when a ring leaves [0, width] x [0, height]."""
    width, height = slide_size
    for ring in rings:
        arr = np.asarray(ring, np.float64)
        lo, hi = arr.min(axis=0), arr.max(axis=0)
        if lo[0] < 0 or lo[1] < 0 or hi[0] > width or hi[1] > height:
            raise SlideBoundsError(
                f"slide {slide}: {what} spans x {lo[0]:g}..{hi[0]:g}, y {lo[1]:g}..{hi[1]:g}, "
                f"outside the level-0 extent {width:g} x {height:g} px"
            )


def _feature(rings: list[list[list[float]]], properties: dict[str, Any]) -> dict[str, Any]:
    """One GeoJSON Polygon feature."""
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": rings},
        "properties": properties,
    }


def _properties(object_type: str, name: str, rgb: list[int]) -> dict[str, Any]:
    """QuPath's feature properties: object type, classification (name, colour), unlocked."""
    return {
        "objectType": object_type,
        "classification": {"name": name, "color": list(rgb)},
        "isLocked": False,
    }


def _rgb(color: Sequence[int]) -> list[int]:
    """A colour as QuPath's [r, g, b] list of ints in 0..255."""
    rgb = [int(c) for c in color]
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise ValueError(f"colour must be three ints in 0..255, got {color!r}")
    return rgb


def tissue_geojson(
    contours: Sequence[np.ndarray],
    holes: Sequence[Sequence[np.ndarray]],
    downsample: tuple[float, float],
    slide_size: tuple[float, float],
    *,
    slide: str = "slide",
    name: str = "Tissue",
    color: Sequence[int] = TISSUE_COLOR,
) -> dict[str, Any]:
    """The segmented tissue as a FeatureCollection: one Polygon per contour, its holes inside.

    `contours`/`holes` are `TissueMask.tissue_contours`/`hole_contours` (cv2 contours at mask
    scale), `downsample` the level-0 pixels per mask pixel (x, y) and `slide_size` the level-0
    (width, height); a vertex sits at the level-0 centre of its mask pixel. Each feature is an
    unlocked QuPath annotation classified `name`, so pathologists can review and edit it.
    """
    if len(holes) != len(contours):
        raise ValueError(
            f"slide {slide}: {len(contours)} tissue contours but {len(holes)} hole lists"
        )
    if not all(float(d) > 0 for d in downsample):
        raise ValueError(f"slide {slide}: downsample must be > 0, got {downsample}")
    rgb = _rgb(color)
    features = []
    for index, (contour, contour_holes) in enumerate(zip(contours, holes, strict=True)):
        outer = _ring(contour, downsample, exterior=True)
        if outer is None:
            raise ValueError(f"slide {slide}: tissue contour {index} encloses no area")
        inner = [r for h in contour_holes if (r := _ring(h, downsample, exterior=False))]
        rings = [outer, *inner]
        _check_inside(rings, slide_size, slide, f"tissue polygon {index}")
        features.append(_feature(rings, _properties("annotation", name, rgb)))
    return {"type": "FeatureCollection", "features": features}


def patches_geojson(
    coords: np.ndarray | Sequence[Sequence[int]],
    patch_size_level0: int,
    scores: np.ndarray | Sequence[float] | None = None,
    top_k: int | None = None,
    *,
    name: str = "Patch",
    slide: str = "slide",
    slide_size: tuple[float, float] | None = None,
    score_name: str = "attention",
    object_type: str = "tile",
    color: Sequence[int] = PATCH_COLOR,
) -> dict[str, Any]:
    """Square patches (level-0 top-left `coords`, as in the coords h5) as QuPath tiles.

    With `scores`, features are ordered by score (highest first, ties in input order), each
    with `measurements` `score_name` and `rank` (1 = highest), and `top_k` keeps the first k:
    the top-attention patches of the heatmaps. `slide_size` (level-0 width, height) makes a
    patch outside the slide raise instead of being written.
    """
    xy = np.asarray(coords)
    if xy.size == 0:
        xy = xy.reshape(0, 2)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"slide {slide}: coords must be (N, 2), got shape {xy.shape}")
    if not np.issubdtype(xy.dtype, np.number) or not np.all(np.isfinite(xy)):
        raise ValueError(f"slide {slide}: coords must be finite numbers")
    size = int(patch_size_level0)
    if size <= 0 or size != patch_size_level0:
        raise ValueError(f"slide {slide}: patch_size_level0 must be an int > 0, got {size}")
    if object_type not in ("tile", "detection", "annotation"):
        raise ValueError(f"object_type must be tile, detection or annotation, not {object_type!r}")
    order = np.arange(len(xy))
    values = None
    if scores is not None:
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(values) != len(xy):
            raise ValueError(f"slide {slide}: {len(values)} scores for {len(xy)} patches")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"slide {slide}: scores must be finite")
        order = np.argsort(-values, kind="stable")
    if top_k is not None:
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        order = order[:top_k]
    rgb = _rgb(color)
    features = []
    for rank, i in enumerate(order, start=1):
        x, y = (int(v) if float(v).is_integer() else float(v) for v in xy[i])
        ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
        if slide_size is not None:
            _check_inside([ring], slide_size, slide, f"patch at ({x}, {y})")
        props = _properties(object_type, name, rgb)
        if values is not None:
            props["measurements"] = [
                {"name": score_name, "value": float(values[i])},
                {"name": "rank", "value": rank},
            ]
        features.append(_feature([ring], props))
    return {"type": "FeatureCollection", "features": features}


def write_geojson(path: str | os.PathLike[str], collection: dict[str, Any]) -> None:
    """Write a FeatureCollection as compact JSON (atomic), the `.geojson` QuPath opens."""
    if collection.get("type") != "FeatureCollection":
        raise ValueError(f"{path}: expected a FeatureCollection, got {collection.get('type')!r}")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(collection, separators=(",", ":"), allow_nan=False))
