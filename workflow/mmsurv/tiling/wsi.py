"""Whole-slide images: one reader factory, MPP resolution, tissue segmentation and tiling."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import h5py
import numpy as np

from mmsurv.io import atomic_path, py_value

__all__ = [
    "READERS",
    "EMPTY_POLICIES",
    "SlideError",
    "EmptySlideError",
    "SegmentationParams",
    "TissueMask",
    "TilingResult",
    "open_slide",
    "level0_mpp",
    "segment_tissue",
    "select_seg_level",
    "tile_slide",
    "read_tile",
    "read_patch_region",
    "resize_patch",
    "verify_slide_file",
    "write_coords_h5",
    "read_coords_h5",
]

log = logging.getLogger(__name__)

Reader = Literal["openslide", "tiffslide"]
READERS: tuple[str, ...] = ("openslide", "tiffslide")
EmptyPolicy = Literal["error", "skip"]
#: What tile_slide does when no tile passes the tissue threshold: raise, or write 0 tiles.
EMPTY_POLICIES: tuple[str, ...] = ("error", "skip")

#: Properties holding the level-0 MPP (x) and the scan objective power, per reader.
_MPP_KEYS = ("openslide.mpp-x", "tiffslide.mpp-x")
_POWER_KEYS = ("openslide.objective-power", "tiffslide.objective-power", "aperio.AppMag")

#: Attributes of a tiling (docs/architecture.md, tiling row); written to every coords h5.
TILING_ATTRS = (
    "patch_size",
    "patch_size_level0",
    "target_magnification",
    "level0_magnification",
    "level0_mpp",
    "read_level",
    "read_size",
    "reader",
    "n_tiles",
    "mpp_source",
    "effective_magnification",
    "empty",
)

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


class SlideError(OSError):
    """A slide file exists but cannot be read by the chosen reader."""


class EmptySlideError(ValueError):
    """No tile of a slide passes the tissue threshold (tiling.empty_policy = error)."""


# --------------------------------------------------------------------------------------------
# Reader factory and magnification
# --------------------------------------------------------------------------------------------


def open_slide(path: str | os.PathLike[str], reader: Reader = "openslide") -> Any:
    """Open a slide with openslide or tiffslide; both expose openslide's API and `with`."""
    if reader not in READERS:
        raise ValueError(f"unknown slide reader {reader!r}; valid readers: {', '.join(READERS)}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"slide file not found: {path}")
    try:
        if reader == "openslide":
            import openslide

            return openslide.OpenSlide(str(path))
        import tiffslide

        return tiffslide.TiffSlide(str(path))
    except Exception as err:  # the readers raise library-specific types; re-raise with the path
        try:
            verify_slide_file(path)  # say "truncated" rather than "unsupported format"
        except SlideError as damaged:
            raise damaged from err
        raise SlideError(f"cannot open slide {path} with {reader}: {err}") from err


def verify_slide_file(path: str | os.PathLike[str]) -> None:
    """Fail naming the file when a TIFF-based slide is truncated or its IFDs are unreadable.

    openslide opens a truncated SVS (its directories come first) and only fails on the first
    missing tile, deep inside a job; the tile offsets show the damage at once. Files that are
    not TIFF (e.g. MRXS) are left to the reader.
    """
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"slide file not found: {path}")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if fh.read(4) not in _TIFF_MAGIC:
            return
    try:
        with tifffile.TiffFile(path) as tif:
            for index, page in enumerate(tif.pages):
                offsets = np.asarray(page.dataoffsets, dtype=np.int64)
                counts = np.asarray(page.databytecounts, dtype=np.int64)
                if offsets.size == 0:
                    continue
                end = int((offsets + counts).max())
                if end > size:
                    raise SlideError(
                        f"slide file {path} is truncated: image {index} stores data up to "
                        f"byte {end:,} but the file has {size:,} bytes (re-download it)"
                    )
    except (tifffile.TiffFileError, ValueError, IndexError, EOFError) as err:
        raise SlideError(f"slide file {path}: unreadable TIFF structure ({err})") from err


def _prop_float(props: Any, keys: tuple[str, ...]) -> float | None:
    """Return the first key of `props` that holds a positive number, else None."""
    for key in keys:
        value = props.get(key)
        if value is None or value == "":
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if number > 0:
            return number
    return None


def level0_mpp(
    slide: Any, path: str | os.PathLike[str], fallback_mpp: float | None = None
) -> tuple[float, str]:
    """Level-0 microns per pixel and its source: slide MPP, else 10/AppMag, else the user table."""
    props = slide.properties
    mpp = _prop_float(props, _MPP_KEYS)
    if mpp is not None:
        return mpp, "mpp"
    power = _prop_float(props, _POWER_KEYS)
    if power is not None:
        return 10.0 / power, "objective-power"
    if fallback_mpp is not None and np.isfinite(fallback_mpp) and fallback_mpp > 0:
        return float(fallback_mpp), "user-table"
    raise ValueError(
        f"slide {path}: no MPP ({'/'.join(_MPP_KEYS)}) and no objective power (AppMag) in its "
        "metadata, and no fallback MPP given; add an 'mpp' column to the slide sheet"
    )


# --------------------------------------------------------------------------------------------
# Tissue segmentation (CLAM's segmentTissue)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentationParams:
    """CLAM's tissue segmentation parameters; defaults are its TCGA preset.

    Areas (`a_t`, `a_h`) are in units of `ref_patch_um`² squares: 64 µm is a 256 px patch at
    level 0 of a 40x (0.25 µm/px) scan, so the unit is physical and the same for 20x scans.
    Kernel sizes (`mthresh`, `close`) are in thumbnail pixels, as in CLAM.
    `seg_level="auto"` picks the level whose pixel size is closest to `seg_um_per_px`
    (16 µm = downsample 64 of a 40x level 0, CLAM's rule); an int forces that level.
    """

    seg_level: int | Literal["auto"] = "auto"
    sthresh: int = 8
    sthresh_up: int = 255
    mthresh: int = 7
    use_otsu: bool = False
    close: int = 4
    a_t: float = 16.0
    a_h: float = 4.0
    max_n_holes: int = 8
    ref_patch_um: float = 64.0
    seg_um_per_px: float = 16.0

    def __post_init__(self) -> None:
        """Reject values that cv2 would silently misuse."""
        if self.mthresh < 1 or self.mthresh % 2 == 0:
            raise ValueError(f"SegmentationParams.mthresh must be odd and >= 1, got {self.mthresh}")
        if self.close < 0 or self.max_n_holes < 0:
            raise ValueError("SegmentationParams.close and max_n_holes must be >= 0")
        if self.seg_level != "auto" and (not isinstance(self.seg_level, int) or self.seg_level < 0):
            raise ValueError(
                f"SegmentationParams.seg_level must be 'auto' or an int >= 0, "
                f"got {self.seg_level!r}"
            )


@dataclass
class TissueMask:
    """Binary tissue mask (holes removed) at thumbnail scale plus the kept contours."""

    mask: np.ndarray  # (h, w) uint8, 1 = tissue
    tissue_contours: list[np.ndarray] = field(default_factory=list)
    hole_contours: list[list[np.ndarray]] = field(default_factory=list)  # per tissue contour

    @property
    def tissue_fraction(self) -> float:
        """Fraction of thumbnail pixels that are tissue."""
        return float(self.mask.mean()) if self.mask.size else 0.0


def segment_tissue(rgb_thumb: np.ndarray, params: SegmentationParams, scale: float) -> TissueMask:
    """Segment tissue on a thumbnail (CLAM): HSV saturation, median, threshold, close, contours.

    `scale` is the thumbnail's pixel size in µm; it converts the area thresholds (units of
    `params.ref_patch_um`² squares) into thumbnail pixels.
    """
    if rgb_thumb.ndim != 3 or rgb_thumb.shape[2] < 3:
        raise ValueError(f"segment_tissue: expected an (h, w, 3) RGB image, got {rgb_thumb.shape}")
    if not scale > 0:
        raise ValueError(f"segment_tissue: scale (µm per thumbnail pixel) must be > 0, got {scale}")
    rgb = np.ascontiguousarray(rgb_thumb[..., :3], dtype=np.uint8)
    sat = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1]
    sat = cv2.medianBlur(sat, params.mthresh)
    if params.use_otsu:
        _, binary = cv2.threshold(sat, 0, params.sthresh_up, cv2.THRESH_OTSU + cv2.THRESH_BINARY)
    else:
        _, binary = cv2.threshold(sat, params.sthresh, params.sthresh_up, cv2.THRESH_BINARY)
    if params.close > 0:
        kernel = np.ones((params.close, params.close), np.uint8)
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, kernel)

    unit_px = (params.ref_patch_um / scale) ** 2
    min_tissue, min_hole = params.a_t * unit_px, params.a_h * unit_px
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    mask = np.zeros(binary.shape, np.uint8)
    result = TissueMask(mask=mask)
    if hierarchy is None or len(contours) == 0:
        return result
    parents = hierarchy[0][:, 3]
    for idx in np.flatnonzero(parents == -1):
        holes = [contours[j] for j in np.flatnonzero(parents == idx)]
        area = cv2.contourArea(contours[idx]) - sum(cv2.contourArea(h) for h in holes)
        if area <= 0 or area <= min_tissue:
            continue
        holes = sorted(holes, key=cv2.contourArea, reverse=True)[: params.max_n_holes]
        kept_holes = [h for h in holes if cv2.contourArea(h) > min_hole]
        result.tissue_contours.append(contours[idx])
        result.hole_contours.append(kept_holes)
    if result.tissue_contours:
        cv2.drawContours(mask, result.tissue_contours, -1, 1, thickness=cv2.FILLED)
        all_holes = [h for holes in result.hole_contours for h in holes]
        if all_holes:
            cv2.drawContours(mask, all_holes, -1, 0, thickness=cv2.FILLED)
    return result


# --------------------------------------------------------------------------------------------
# Tiling
# --------------------------------------------------------------------------------------------


@dataclass
class TilingResult:
    """Tiles kept on one slide: level-0 coords, the tiling attrs and the QC material."""

    coords: np.ndarray  # (N, 2) int64, level-0 top-left (x, y)
    attrs: dict[str, Any]
    tissue: TissueMask
    thumb: np.ndarray  # RGB thumbnail the mask was computed on
    thumb_downsample: tuple[float, float]  # level-0 pixels per thumbnail pixel (x, y)
    seg_level: int


def select_seg_level(slide: Any, mpp: float, params: SegmentationParams) -> int:
    """Level used for segmentation: `params.seg_level`, or the one closest to seg_um_per_px."""
    if params.seg_level != "auto":
        if params.seg_level >= slide.level_count:
            raise ValueError(
                f"seg_level={params.seg_level} but the slide has {slide.level_count} levels"
            )
        return int(params.seg_level)
    want = np.log(params.seg_um_per_px / mpp)
    dists = [abs(np.log(float(d)) - want) for d in slide.level_downsamples]
    return int(np.argmin(dists))


def _read_level_rgb(slide: Any, level: int) -> np.ndarray:
    """Read a whole pyramid level as an RGB uint8 array."""
    w, h = slide.level_dimensions[level]
    region = slide.read_region((0, 0), level, (int(w), int(h)))
    return np.ascontiguousarray(np.asarray(region)[..., :3])


def _choose_read_level(
    downsamples: tuple[float, ...], factor: float, tolerance: float
) -> int | None:
    """The level whose downsample is within `tolerance` (relative) of `factor`, if any."""
    best, best_err = None, tolerance
    for level, ds in enumerate(downsamples):
        err = abs(float(ds) - factor) / factor
        if err <= best_err:
            best, best_err = level, err
    return best


def _level_tile_size(slide: Any, level: int) -> tuple[int, int] | None:
    """(width, height) of the stored tiles of a level, from the reader's properties."""
    props = slide.properties
    for prefix in ("openslide", "tiffslide"):
        w = _prop_float(props, (f"{prefix}.level[{level}].tile-width",))
        h = _prop_float(props, (f"{prefix}.level[{level}].tile-height",))
        if w is not None and h is not None:
            return int(w), int(h)
    return None


def _snap_read_size(exact: float, tile: int, tolerance: float) -> int | None:
    """The multiple or divisor of `tile` nearest `exact`, if within `tolerance` (relative)."""
    candidates = {tile * k for k in range(1, 9)} | {tile // k for k in range(2, 9) if tile % k == 0}
    best = min(candidates, key=lambda c: abs(c - exact))
    return best if abs(best - exact) <= tolerance * exact else None


def tile_slide(
    path: str | os.PathLike[str],
    *,
    reader: Reader = "openslide",
    patch_size: int = 256,
    target_magnification: float = 20.0,
    mag_tolerance: float = 0.1,
    seg: SegmentationParams | None = None,
    min_tissue_fraction: float = 0.5,
    fallback_mpp: float | None = None,
    snap_to_tiles: float = 0.02,
    empty_policy: EmptyPolicy = "skip",
) -> TilingResult:
    """Non-overlapping `patch_size` tiles at `target_magnification` inside the tissue mask.

    The grid starts at level-0 (0, 0) in steps of `patch_size_level0`, so at the read level it
    starts on the file's tile grid. When the read size is within `snap_to_tiles` (relative) of a
    multiple or divisor of the stored tile size, it is snapped to it (e.g. 508 -> 512 px for a
    0.252 µm/px scan; CLAM and TRIDENT use 512 there too), so patches lie on whole JPEG tiles and
    feature extraction can decode them directly; `effective_magnification` records the result.
    A tile is kept when at least `min_tissue_fraction` of its area lies inside the tissue mask
    (holes removed). With no tile kept, `empty_policy="error"` raises EmptySlideError and
    `"skip"` warns and returns 0 tiles with attribute `empty` set.
    """
    seg = seg or SegmentationParams()
    if patch_size <= 0 or target_magnification <= 0:
        raise ValueError(f"{path}: patch_size and target_magnification must be > 0")
    if empty_policy not in EMPTY_POLICIES:
        raise ValueError(f"empty_policy must be one of {EMPTY_POLICIES}, got {empty_policy!r}")
    if not 0 <= snap_to_tiles < 0.5:
        raise ValueError(f"snap_to_tiles must be in [0, 0.5), got {snap_to_tiles}")
    verify_slide_file(path)
    with open_slide(path, reader) as slide:
        mpp, mpp_source = level0_mpp(slide, path, fallback_mpp)
        level0_mag = 10.0 / mpp
        ps0, read_level, read_size = _read_geometry(
            slide, path, mpp, patch_size, target_magnification, mag_tolerance, snap_to_tiles
        )
        seg_level = select_seg_level(slide, mpp, seg)
        thumb = _read_level_rgb(slide, seg_level)
        width, height = (int(v) for v in slide.dimensions)
    th, tw = thumb.shape[:2]
    sx, sy = width / tw, height / th
    tissue = segment_tissue(thumb, seg, scale=mpp * (sx + sy) / 2)
    coords = _tissue_tiles(tissue, (width, height), ps0, (sx, sy), min_tissue_fraction)
    if len(coords) == 0:
        why = (
            f"no tissue tiles found (0 tiles; tissue covers {tissue.tissue_fraction:.1%} of the "
            f"thumbnail, {len(tissue.tissue_contours)} tissue region(s), "
            f"min_tissue_fraction={min_tissue_fraction})"
        )
        if empty_policy == "error":
            raise EmptySlideError(f"slide {path}: {why}; tiling.empty_policy=error")
        warnings.warn(f"slide {path}: {why}; skipped (tiling.empty_policy=skip)", stacklevel=2)
    attrs = {
        "patch_size": int(patch_size),
        "patch_size_level0": ps0,
        "target_magnification": float(target_magnification),
        "level0_magnification": float(level0_mag),
        "level0_mpp": float(mpp),
        "read_level": int(read_level),
        "read_size": read_size,
        "reader": reader,
        "n_tiles": int(len(coords)),
        "mpp_source": mpp_source,
        "effective_magnification": float(level0_mag * patch_size / ps0),
        "empty": bool(len(coords) == 0),
    }
    return TilingResult(
        coords=np.ascontiguousarray(coords, dtype=np.int64),
        attrs=attrs,
        tissue=tissue,
        thumb=thumb,
        thumb_downsample=(sx, sy),
        seg_level=seg_level,
    )


def _read_geometry(
    slide: Any,
    path: str | os.PathLike[str],
    mpp: float,
    patch_size: int,
    target_magnification: float,
    mag_tolerance: float,
    snap_to_tiles: float,
) -> tuple[int, int, int]:
    """(patch_size_level0, read_level, read_size): where and how large each patch is read."""
    target_mpp = 10.0 / target_magnification
    ps0 = int(round(patch_size * target_mpp / mpp))
    if ps0 < 1:
        raise ValueError(f"slide {path}: patch_size_level0 < 1 (mpp={mpp})")
    downsamples = tuple(float(d) for d in slide.level_downsamples)
    level = _choose_read_level(downsamples, ps0 / patch_size, mag_tolerance)
    read_level = 0 if level is None else level
    ds = downsamples[read_level]
    read_size = int(round(ps0 / ds))
    tile = _level_tile_size(slide, read_level)
    if snap_to_tiles > 0 and tile is not None and tile[0] == tile[1] and ds == round(ds):
        snapped = _snap_read_size(patch_size * target_mpp / mpp / ds, tile[0], snap_to_tiles)
        if snapped is not None and snapped != read_size:
            log.info(
                "slide %s: read size %d -> %d px to follow the %d px tile grid",
                path,
                read_size,
                snapped,
                tile[0],
            )
            read_size, ps0 = snapped, int(snapped * round(ds))
    return ps0, read_level, read_size


def _tissue_tiles(
    tissue: TissueMask,
    size: tuple[int, int],
    ps0: int,
    scale: tuple[float, float],
    min_tissue_fraction: float,
) -> np.ndarray:
    """Level-0 (x, y) of the grid tiles with at least `min_tissue_fraction` tissue."""
    width, height = size
    xs = np.arange(0, width - ps0 + 1, ps0, dtype=np.int64)
    ys = np.arange(0, height - ps0 + 1, ps0, dtype=np.int64)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    if grid.size and tissue.tissue_contours:
        frac = _tile_fractions(tissue.mask, grid, ps0, *scale)
        return grid[frac >= min_tissue_fraction]
    return np.zeros((0, 2), np.int64)


def _tile_fractions(
    mask: np.ndarray, grid: np.ndarray, ps0: int, sx: float, sy: float
) -> np.ndarray:
    """Fraction of each tile's footprint (on the mask, rounded to pixels) that is tissue."""
    h, w = mask.shape
    integral = cv2.integral(mask.astype(np.uint8), sdepth=cv2.CV_64F)
    x0 = np.clip(np.rint(grid[:, 0] / sx).astype(np.int64), 0, w - 1)
    y0 = np.clip(np.rint(grid[:, 1] / sy).astype(np.int64), 0, h - 1)
    x1 = np.clip(np.maximum(np.rint((grid[:, 0] + ps0) / sx).astype(np.int64), x0 + 1), 1, w)
    y1 = np.clip(np.maximum(np.rint((grid[:, 1] + ps0) / sy).astype(np.int64), y0 + 1), 1, h)
    total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return total / ((x1 - x0) * (y1 - y0))


def read_patch_region(slide: Any, coord: Any, result_attrs: dict[str, Any]) -> np.ndarray:
    """The (read_size, read_size, 3) uint8 region of one tile at its read level."""
    x, y = (int(v) for v in coord)
    read_size = int(result_attrs["read_size"])
    region = slide.read_region((x, y), int(result_attrs["read_level"]), (read_size, read_size))
    return np.asarray(region)[..., :3]


def resize_patch(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize a square RGB patch to `size` (area averaging down, bilinear up); contiguous."""
    if rgb.shape[0] != size or rgb.shape[1] != size:
        interp = cv2.INTER_AREA if rgb.shape[0] > size else cv2.INTER_LINEAR
        rgb = cv2.resize(np.ascontiguousarray(rgb), (size, size), interpolation=interp)
    return np.ascontiguousarray(rgb)


def read_tile(slide: Any, coord: Any, result_attrs: dict[str, Any]) -> np.ndarray:
    """Read one tile at the target magnification as (patch_size, patch_size, 3) uint8."""
    region = read_patch_region(slide, coord, result_attrs)
    return resize_patch(region, int(result_attrs["patch_size"]))


# --------------------------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------------------------


def write_coords_h5(path: str | os.PathLike[str], result: TilingResult) -> None:
    """Write CLAM/TRIDENT-style coords h5: dataset `coords` with the tiling attrs (also on file)."""
    path = Path(path)
    missing = [k for k in TILING_ATTRS if k not in result.attrs]
    if missing:
        raise KeyError(f"write_coords_h5({path}): tiling attrs missing: {missing}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        dset = f.create_dataset("coords", data=np.asarray(result.coords, np.int64).reshape(-1, 2))
        attrs = dict(result.attrs)
        attrs.setdefault("name", path.stem)
        attrs.setdefault("overlap", 0)
        for key, value in attrs.items():
            dset.attrs[key] = value
            f.attrs[key] = value


def read_coords_h5(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a coords h5: (coords (N, 2) int64, attrs of the `coords` dataset)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"coords file not found: {path}")
    with h5py.File(path, "r") as f:
        if "coords" not in f:
            raise KeyError(f"{path}: no 'coords' dataset")
        dset = f["coords"]
        coords = np.asarray(dset[()], dtype=np.int64).reshape(-1, 2)
        attrs = {k: py_value(v) for k, v in dset.attrs.items()}
    missing = [k for k in ("patch_size", "read_level", "read_size") if k not in attrs]
    if missing:
        raise KeyError(f"{path}: coords attrs missing {missing}")
    return coords, attrs
