"""Feature stage: one extraction job encodes a batch of slides into per-slide h5 files."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
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
    resume_dir: PathLike | None = None,
) -> list[int]:
    """Encode several slides with one encoder load and one loader; one feature h5 per slide.

    The next slide's tiles are read while the current one is encoded; a slide that fails
    (truncated file, too many unreadable tiles) is reported after the others are written.
    Finished slides are kept beside the outputs (``.resume/``) until the batch has succeeded,
    or in ``resume_dir`` when given (outputs in one directory that Snakemake deletes when the
    job fails: rule extract_features), so that a rerun encodes only the unfinished slides.
    """
    if not len(slides) == len(coords) == len(outs):
        raise ValueError(f"{len(slides)} slides, {len(coords)} coords files, {len(outs)} outputs")
    if resume_dir is None:
        return _extract(slides, coords, outs, features, reader, threads)
    with _kept_in(outs, Path(resume_dir)):
        return _extract(slides, coords, outs, features, reader, threads)


@contextlib.contextmanager
def _kept_in(outs: Sequence[PathLike], resume_dir: Path) -> Iterator[None]:
    """Make ``<outputs' directory>/.resume`` a symlink to ``resume_dir`` during the extraction."""
    # extract_features keeps finished outputs in the .resume directory beside them; through a
    # symlink they land in resume_dir, which deleting the outputs' directory leaves in place.
    from mmsurv.features.resume import RESUME_DIR
    from mmsurv.tiling.wsi import SlideError

    parents = {Path(o).parent for o in outs}
    if len(parents) != 1:
        raise ValueError(f"with resume_dir, the outputs must share one directory, not {parents}")
    link = parents.pop() / RESUME_DIR
    link.parent.mkdir(parents=True, exist_ok=True)
    resume_dir.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():  # left by a killed run
        link.unlink()
    link.symlink_to(os.path.relpath(resume_dir, link.parent), target_is_directory=True)
    try:
        yield
    except SlideError as err:  # name where the finished slides really are
        raise SlideError(str(err).replace(str(link), str(resume_dir))) from None
    finally:
        # resume_dir stays, even empty: other batches of the cohort, running at the same time,
        # write through their own links into it (removing it left their links dangling)
        link.unlink()


def _extract(
    slides: Sequence[PathLike],
    coords: Sequence[PathLike],
    outs: Sequence[PathLike],
    features: Mapping[str, Any],
    reader: str,
    threads: int,
) -> list[int]:
    """Run extract_features with the features config; tiles per slide."""
    import torch

    from mmsurv.features.extract import extract_features

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
