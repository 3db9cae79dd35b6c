"""Feature stage: one extraction job encodes a batch of slides into per-slide h5 files."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def extract_features_batch(
    slides: Sequence[PathLike],
    coords: Sequence[PathLike],
    outs: Sequence[PathLike],
    *,
    features: Mapping[str, Any],
    reader: str,
    threads: int = 1,
) -> list[int]:
    """Encode several slides with one encoder load and one loader; one feature h5 per slide.

    The next slide's tiles are read while the current one is encoded; a slide that fails
    (truncated file, too many unreadable tiles) is reported after the others are written.
    """
    import torch

    from mmsurv.features.extract import extract_features

    if not len(slides) == len(coords) == len(outs):
        raise ValueError(f"{len(slides)} slides, {len(coords)} coords files, {len(outs)} outputs")
    torch.set_num_threads(threads)
    counts = extract_features(
        slides,
        coords,
        outs,
        encoder=features["encoder"],
        weights=features["weights"],
        reader=reader,
        batch_size=features["batch_size"],
        num_workers=features["num_workers"],
        device=features["device"],
        precision=features.get("precision", "auto"),
        channels_last=features.get("channels_last", True),
        fast_tiles=features.get("fast_tiles", "aligned"),
        max_bad_tile_fraction=features.get("max_bad_tile_fraction", 0.05),
        prefetch_batches=features.get("prefetch_batches", 4),
        decode_on_device=features.get("decode_on_device", False),
    )
    log.info("%d slides, %d tiles encoded", len(counts), sum(counts))
    return counts
