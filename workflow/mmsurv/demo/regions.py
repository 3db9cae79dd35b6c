"""Planted risk regions of the demo slides: their geometry, region files and per-patch overlap.

The demo carries its pathology risk in *regions*: patches of a tumour-like texture (crowded,
large, dark nuclei on purple stroma) whose share of the tissue grows with the case's hidden
risk (`planted_fraction`); the tissue around them does not depend on the risk.

A region file (`{slide_id}.geojson`, beside the cohort's `truth.tsv` under `regions/`) is a
GeoJSON FeatureCollection that QuPath and any GeoJSON reader open: one Polygon per connected
region, exterior ring counter-clockwise then its holes (lumens inside the region) clockwise,
rings closed, in **level-0 pixel coordinates of that slide** (x right, y down, origin at the
top-left corner of the slide; a vertex sits at the centre of its boundary pixel). A 40x demo
scan is its 20x field upsampled 2x, so its coordinates are twice the 20x field's. The
rings are simplified pixel traces (0.75 px); like the tiling's tissue GeoJSON, a rare ring may
touch itself where a region narrows to a pixel (QuPath draws it, `shapely.make_valid` repairs
it). The collection's foreign members record `slide_id`, `level0_size` ([width, height]),
`level0_per_field_px` (1 or 2) and `region_fraction` (region / tissue area). Feature
properties follow QuPath: `objectType: annotation`, `classification {name: Tumour, color}`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import cv2
import h5py
import numpy as np

from mmsurv.io import write_text_atomic

__all__ = [
    "FRACTION_RANGE",
    "REGION_CLASS",
    "planted_fraction",
    "plant_regions",
    "region_geojson",
    "write_region_file",
    "read_region_polygons",
    "patch_region_fraction",
    "attention_in_regions",
]

#: Share of the tissue the planted regions cover, from the lowest to the highest hidden risk.
FRACTION_RANGE = (0.02, 0.35)
#: Logistic slope on the hidden risk (N(0, 1)) and per-slide noise (sd, on the logit scale).
FRACTION_SLOPE, FRACTION_NOISE = 1.5, 0.5
#: QuPath classification of the planted regions.
REGION_CLASS, REGION_COLOR = "Tumour", (200, 0, 200)
_DECIMALS = 2
_MAX_CELLS = 8192  # patch_region_fraction's raster: at most this many cells a side
_MIN_PX = 1024  # smallest planted fragment kept (field pixels: 16 x 16 µm at 20x)
_GRID = 8  # field pixels per cell of the smooth field the regions are cut from


class RegionFileError(ValueError):
    """A region file that is not the GeoJSON this module writes (names the file)."""


def planted_fraction(rng: np.random.Generator, risk: float) -> float:
    """Share of tissue to plant for `risk`: monotone logistic in the risk, per-slide noise."""
    lo, hi = FRACTION_RANGE
    logit = FRACTION_SLOPE * float(risk) + rng.normal(0.0, FRACTION_NOISE)
    return lo + (hi - lo) / (1.0 + np.exp(-logit))


def plant_regions(
    rng: np.random.Generator, tissue: np.ndarray, fraction: float, max_regions: int = 3
) -> np.ndarray:
    """Region mask (uint8, inside `tissue`) covering `fraction` of it: 1..max_regions blobs.

    The blobs are the top `fraction` of a smooth field (Gaussian bumps at random tissue points,
    with multiplicative low-frequency noise for irregular borders), so the area is what was asked
    (less the specks an opening removes) and the regions are compact, not speckle.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    height, width = tissue.shape
    region = np.zeros((height, width), np.uint8)
    inside = tissue > 0
    n_tissue = int(inside.sum())
    ys, xs = np.nonzero(inside[::_GRID, ::_GRID])
    n_target = int(round(fraction * n_tissue))
    if n_target == 0 or len(xs) == 0:
        return region
    k = int(rng.integers(1, max_regions + 1))
    pick = rng.choice(len(xs), size=min(k, len(xs)), replace=False)
    cx, cy = xs[pick] * _GRID, ys[pick] * _GRID
    weights = rng.uniform(0.6, 1.0, size=len(pick))
    sigma = 0.3 * np.sqrt(n_tissue / len(pick))
    gh, gw = height // _GRID + 1, width // _GRID + 1
    gy, gx = np.mgrid[0:gh, 0:gw].astype(np.float32) * _GRID
    field = np.zeros((gh, gw), np.float32)
    for x, y, w in zip(cx.tolist(), cy.tolist(), weights.tolist(), strict=True):
        bump = w * np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2 * sigma**2))
        field = np.maximum(field, bump.astype(np.float32))
    low = rng.normal(0, 0.35, size=(gh // 6 + 2, gw // 6 + 2)).astype(np.float32)
    field *= np.exp(cv2.resize(low, (gw, gh), interpolation=cv2.INTER_CUBIC))
    full = cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)
    values = full[inside]
    threshold = np.partition(values, len(values) - n_target)[len(values) - n_target]
    region[inside & (full >= threshold)] = 1
    # opening drops one-pixel necks (self-touching rings), then fragments under _MIN_PX go
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    region = cv2.morphologyEx(region, cv2.MORPH_OPEN, kernel)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
    keep = np.zeros(n, np.uint8)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= _MIN_PX
    return keep[labels]


def _ring(contour: np.ndarray, scale: float, *, exterior: bool) -> list[list[float]] | None:
    """A cv2 contour (field pixels) as a closed ring in level-0 pixel centres, or None if flat."""
    pts = cv2.approxPolyDP(contour, 0.75, True).reshape(-1, 2).astype(np.float64)
    if len(pts) < 3:
        return None
    ring = np.round((pts + 0.5) * scale, _DECIMALS)
    x, y = ring[:, 0], ring[:, 1]
    area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
    if area == 0:
        return None
    if (area > 0) != exterior:
        ring = ring[::-1]
    return [[float(a), float(b)] for a, b in np.vstack([ring, ring[:1]])]


def region_geojson(
    region: np.ndarray, scale: float, *, slide_id: str, fraction: float
) -> dict[str, Any]:
    """The region mask of a 20x field as a FeatureCollection in the slide's level-0 pixels.

    `scale` is level-0 pixels per field pixel (1 for a 20x scan, 2 for a 40x one); every
    vertex is checked to lie inside the slide.
    """
    height, width = region.shape
    size = [int(round(width * scale)), int(round(height * scale))]
    contours, hierarchy = cv2.findContours(
        region.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE
    )
    features = []
    tree = hierarchy[0] if hierarchy is not None else np.zeros((0, 4), int)
    properties = {
        "objectType": "annotation",
        "classification": {"name": REGION_CLASS, "color": list(REGION_COLOR)},
        "isLocked": False,
    }
    for i, contour in enumerate(contours):
        if tree[i][3] != -1:  # a hole: written with its parent
            continue
        outer = _ring(contour, scale, exterior=True)
        if outer is None:
            continue
        rings = [outer]
        child = tree[i][2]
        while child != -1:
            if (hole := _ring(contours[child], scale, exterior=False)) is not None:
                rings.append(hole)
            child = tree[child][0]
        for ring in rings:
            arr = np.asarray(ring)
            if arr.min() < 0 or arr[:, 0].max() > size[0] or arr[:, 1].max() > size[1]:
                raise ValueError(f"slide {slide_id}: a region polygon leaves the slide {size}")
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": rings},
                "properties": dict(properties),
            }
        )
    return {
        "type": "FeatureCollection",
        "slide_id": slide_id,
        "level0_size": size,
        "level0_per_field_px": scale,
        "region_fraction": round(float(fraction), 6),
        "features": features,
    }


def write_region_file(path: str | os.PathLike[str], collection: dict[str, Any]) -> None:
    """Write a region FeatureCollection atomically (compact JSON, one line)."""
    write_text_atomic(path, json.dumps(collection, separators=(",", ":")) + "\n")


def read_region_polygons(path: str | os.PathLike[str]) -> list[list[np.ndarray]]:
    """The polygons of a region file: per polygon, its rings (exterior first) as (K, 2) arrays."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except json.JSONDecodeError as err:
        raise RegionFileError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise RegionFileError(f"{path}: expected a GeoJSON FeatureCollection")
    polygons = []
    for i, feature in enumerate(data.get("features", [])):
        geometry = (feature or {}).get("geometry") or {}
        if geometry.get("type") != "Polygon":
            raise RegionFileError(f"{path}: feature {i} is not a Polygon")
        rings = [np.asarray(r, np.float64) for r in geometry.get("coordinates", [])]
        if not rings or any(r.ndim != 2 or r.shape[1] != 2 or len(r) < 4 for r in rings):
            raise RegionFileError(f"{path}: feature {i} has a malformed ring")
        polygons.append(rings)
    return polygons


def patch_region_fraction(
    region_file: str | os.PathLike[str],
    coords: np.ndarray | Sequence[Sequence[int]],
    patch_size_level0: int,
) -> np.ndarray:
    """Each patch's area fraction inside the planted regions, in [0, 1] (float64, (N,)).

    `coords` are level-0 top-left (x, y) as in the patches/features h5 and `patch_size_level0`
    their side (the h5's `patch_size_level0` attribute). The polygons are rasterised at
    1/128 of a patch side (coarser on slides over 8192 such cells a side), so a fraction is
    exact to ~1 % per region border crossing the patch and exactly 0 or 1 away from borders.
    """
    xy = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    size = int(patch_size_level0)
    if size <= 0:
        raise ValueError(f"{region_file}: patch_size_level0 must be > 0, got {patch_size_level0}")
    if len(xy) == 0:
        return np.zeros(0)
    polygons = read_region_polygons(region_file)
    far = max([float(xy.max()) + size] + [float(r.max()) for p in polygons for r in p])
    down = max(1.0, size / 128.0, far / _MAX_CELLS)  # the grid stays under _MAX_CELLS a side
    n = int(np.ceil(far / down)) + 2
    mask = np.zeros((n, n), np.uint8)
    shift = 4  # cv2 sub-pixel bits
    for rings in polygons:
        # one call per polygon: its holes stay empty (even-odd), other polygons are not erased
        layer = np.zeros_like(mask)
        pts = [np.rint((r / down - 0.5) * (1 << shift)).astype(np.int32) for r in rings]
        cv2.fillPoly(layer, pts, 1, lineType=cv2.LINE_8, shift=shift)
        mask |= layer
    integral = cv2.integral(mask).astype(np.float64)
    x0 = np.clip(np.rint(xy[:, 0] / down).astype(int), 0, n)
    y0 = np.clip(np.rint(xy[:, 1] / down).astype(int), 0, n)
    x1 = np.clip(np.rint((xy[:, 0] + size) / down).astype(int), 0, n)
    y1 = np.clip(np.rint((xy[:, 1] + size) / down).astype(int), 0, n)
    total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    return np.clip(total / area, 0.0, 1.0)


def attention_in_regions(
    scores_dir: str | os.PathLike[str],
    regions_dir: str | os.PathLike[str],
    key: str = "attention",
    inside_at: float = 0.5,
) -> dict[str, float]:
    """Mean per-patch score inside vs outside the planted regions, over a heatmap directory.

    Reads every `{slide_id}.h5` in `scores_dir` (`coords`, the score dataset `key`, attribute
    `patch_size_level0`: the heatmaps' CLAM-style files) with its `{slide_id}.geojson` in
    `regions_dir`. A patch is inside when `patch_region_fraction` >= `inside_at`, outside when
    it is 0. Returns the means (`inside`, `outside`), the means of the score relative to its
    slide's mean (`inside_rel`, `outside_rel`: attention x N for a softmax over N patches) and
    the patch counts, so a test can assert that a model attends to the planted regions.
    """
    scores_dir, regions_dir = os.fspath(scores_dir), os.fspath(regions_dir)
    names = sorted(n for n in os.listdir(scores_dir) if n.endswith(".h5"))
    if not names:
        raise FileNotFoundError(f"{scores_dir}: no per-slide score files (*.h5)")
    values: dict[str, list[np.ndarray]] = {"in": [], "out": [], "in_rel": [], "out_rel": []}
    for name in names:
        path = os.path.join(scores_dir, name)
        with h5py.File(path, "r") as h5:
            for need in ("coords", key):
                if need not in h5:
                    raise KeyError(f"{path}: no dataset {need!r}")
            coords = np.asarray(h5["coords"][()]).reshape(-1, 2)
            score = np.asarray(h5[key][()], np.float64).reshape(-1)
            size = h5.attrs.get("patch_size_level0", h5["coords"].attrs.get("patch_size_level0"))
        if size is None:
            raise KeyError(f"{path}: no `patch_size_level0` attribute")
        if len(score) != len(coords):
            raise ValueError(f"{path}: {len(score)} {key} values for {len(coords)} coords")
        if len(score) == 0:
            continue
        region_file = os.path.join(regions_dir, name[: -len(".h5")] + ".geojson")
        frac = patch_region_fraction(region_file, coords, int(size))
        inside, outside = frac >= inside_at, frac == 0
        rel = score / score.mean() if score.mean() != 0 else score
        values["in"].append(score[inside])
        values["out"].append(score[outside])
        values["in_rel"].append(rel[inside])
        values["out_rel"].append(rel[outside])
    pooled = {k: np.concatenate(v) if v else np.zeros(0) for k, v in values.items()}

    def mean(a: np.ndarray) -> float:
        """Mean, NaN when there is nothing to average."""
        return float(a.mean()) if len(a) else float("nan")

    return {
        "inside": mean(pooled["in"]),
        "outside": mean(pooled["out"]),
        "inside_rel": mean(pooled["in_rel"]),
        "outside_rel": mean(pooled["out_rel"]),
        "n_inside": float(len(pooled["in"])),
        "n_outside": float(len(pooled["out"])),
    }
