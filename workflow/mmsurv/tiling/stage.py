"""Tiling stage: tissue segmentation, tile coordinates and QC images for the tiling rules."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def tile_and_save(
    slide: PathLike,
    *,
    coords_h5: PathLike,
    qc_png: PathLike,
    tiling: Mapping[str, Any],
    fallback_mpp: float | None = None,
    geojson: PathLike | None = None,
) -> int:
    """Segment and tile one slide with the `tiling` config, write coords h5 and QC thumbnail.

    With `geojson`, the tissue contours and holes also go there as a QuPath-importable
    FeatureCollection at level-0 pixels (empty when no tissue was found).
    A slide without tissue raises (tiling.empty_policy=error) or gets an empty (0, 2) coords
    file with attribute `empty` and a QC thumbnail (skip), so the rest of the run goes on.
    """
    from mmsurv.tiling.geojson import tissue_geojson, write_geojson
    from mmsurv.tiling.qc import save_qc_thumbnail
    from mmsurv.tiling.wsi import SegmentationParams, tile_slide, write_coords_h5

    result = tile_slide(
        slide,
        reader=tiling["reader"],
        patch_size=tiling["patch_size"],
        target_magnification=float(tiling["target_magnification"]),
        mag_tolerance=tiling["mag_tolerance"],
        seg=SegmentationParams(**tiling.get("segmentation", {})),
        min_tissue_fraction=tiling["min_tissue_fraction"],
        fallback_mpp=fallback_mpp,
        snap_to_tiles=float(tiling.get("snap_to_tiles", 0.02)),
        empty_policy=tiling.get("empty_policy", "skip"),
    )
    write_coords_h5(coords_h5, result)
    save_qc_thumbnail(qc_png, result.thumb, result)
    if geojson is not None:
        (mh, mw), (sx, sy) = result.tissue.mask.shape, result.thumb_downsample
        tissue = result.tissue
        collection = tissue_geojson(
            tissue.tissue_contours,
            tissue.hole_contours,
            downsample=(sx, sy),
            slide_size=(round(mw * sx), round(mh * sy)),  # the level-0 size (sx = width / mw)
            slide=os.path.basename(slide),
        )
        write_geojson(geojson, collection)
    if result.attrs["empty"]:
        log.warning("%s: no tissue tiles; empty coords file written (empty_policy=skip)", slide)
    log.info("%s: %d tiles", slide, len(result.coords))
    return len(result.coords)


def cohort_qc_sheet(
    qc_pngs: Sequence[PathLike],
    coords_h5: Sequence[PathLike],
    slides: Sequence[str],
    out_jpg: PathLike,
) -> int:
    """The report's QC image of a cohort: every slide's overlay, labelled with its tile count.

    Slides with no tile kept (empty tissue mask, or all tiles below min_tissue_fraction) are
    framed in red and logged. Returns how many such slides there are.
    """
    from mmsurv.tiling.qc import qc_contact_sheet
    from mmsurv.tiling.wsi import read_coords_h5

    if not len(qc_pngs) == len(coords_h5) == len(slides):
        raise ValueError(f"{len(qc_pngs)} QC images, {len(coords_h5)} coords files, {len(slides)}")
    counts = [len(read_coords_h5(c)[0]) for c in coords_h5]
    empty = [s for s, n in zip(slides, counts, strict=True) if n == 0]
    if empty:
        log.warning("%d slide(s) without any tile (framed in red): %s", len(empty), empty[:20])
    labels = [f"{s} ({n})" for s, n in zip(slides, counts, strict=True)]
    h, w = qc_contact_sheet(list(qc_pngs), labels, out_jpg, flagged=[n == 0 for n in counts])
    log.info("QC sheet of %d slides, %d x %d px -> %s", len(slides), w, h, out_jpg)
    return len(empty)
