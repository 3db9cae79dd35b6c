"""Per-slide feature extraction to HDF5: one encoder and one loader for a batch of slides."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader

from mmsurv.features.device import (
    _autocast_dtype,
    _DeviceJpeg,
    _resolve_device,
    input_resize_label,
    jpeg_streams,
    normalisation,
    prepare_batch,
)
from mmsurv.features.encoders import Encoder, create_encoder
from mmsurv.features.loader import _TILE_ERRORS, SlideJob, TileBatches, _prefetched, tile_label
from mmsurv.features.resume import (
    RESUME_DIR,
    _place,
    _reuse_kept_output,
    _slide_stamp,
    resume_path,
)
from mmsurv.features.tileread import FastMode
from mmsurv.io import atomic_path
from mmsurv.tiling.wsi import (
    Reader,
    SlideError,
    open_slide,
    read_coords_h5,
    read_patch_region,
    resize_patch,
    verify_slide_file,
)

__all__ = ["extract_features", "extract_slide_features"]

log = logging.getLogger(__name__)


def _write_features(job: SlideJob, feats: np.ndarray, enc: Encoder, extra: dict[str, Any]) -> None:
    """Write one slide's feature h5 (features, coords, provenance) to a temp name, then rename."""
    attrs = job.attrs
    with atomic_path(job.out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("features", data=np.asarray(feats, np.float32).reshape(-1, enc.dim))
        dset = f.create_dataset("coords", data=job.coords.astype(np.int64).reshape(-1, 2))
        for key, value in attrs.items():
            dset.attrs[key] = value
        f.create_dataset("bad_tiles", data=np.asarray(extra.pop("bad_tiles", []), np.int64))
        f.attrs["encoder"] = enc.name
        f.attrs["weights"] = enc.weights_id
        f.attrs["feature_dim"] = int(enc.dim)
        f.attrs["target_magnification"] = float(attrs.get("target_magnification", np.nan))
        f.attrs["patch_size"] = int(attrs["patch_size"])
        f.attrs["n_tiles"] = int(len(job.coords))
        for key, value in extra.items():
            f.attrs[key] = value
        for key, value in _slide_stamp(job.slide).items():
            f.attrs[key] = value
    if job.keep_finished:
        _place(job.out, resume_path(job.out))


def _load_job(
    slide: str | os.PathLike[str],
    coords_h5: str | os.PathLike[str],
    out: Any,
    keep_finished: bool = False,
) -> SlideJob:
    """Read a slide's coords and check its files exist (missing inputs are config errors)."""
    coords, attrs = read_coords_h5(coords_h5)
    if not Path(slide).is_file():
        raise FileNotFoundError(f"slide file not found: {slide}")
    return SlideJob(str(slide), coords, attrs, Path(out), keep_finished=keep_finished)


def extract_features(
    slides: Sequence[str | os.PathLike[str]],
    coords_h5: Sequence[str | os.PathLike[str]],
    out_h5: Sequence[str | os.PathLike[str]],
    *,
    encoder: str | Encoder = "resnet50_trunc",
    weights: str | None = None,
    reader: Reader = "openslide",
    batch_size: int = 64,
    num_workers: int = 0,
    device: str = "auto",
    precision: str = "auto",
    channels_last: bool = True,
    fast_tiles: FastMode = "aligned",
    max_bad_tile_fraction: float = 0.05,
    prefetch_batches: int = 4,
    resize_on_device: bool | None = None,
    resume: bool = True,
    decode_on_device: bool = False,
) -> list[int]:
    """Encode the tiles of several slides with one encoder and one loader; one h5 per slide.

    The loader runs through all slides' tile batches in order, so the next slide is read while
    the current one is encoded (DataLoader workers, or a background thread when
    `num_workers=0`). Tiles come from the raw JPEG tiles where `fast_tiles` allows
    (tileread.py), else from the reader's `read_region`. On CUDA, batches are pinned and
    copied asynchronously and the encoder runs under autocast (`precision`). A tile that
    cannot be read is replaced by zeros and listed in the output's `bad_tiles`; a slide with
    more than `max_bad_tile_fraction` bad tiles, a truncated or unreadable slide fails without
    an output, after the other slides are written, with a SlideError naming each failed slide.
    Each output is written to a temp name and renamed when complete. Returns tiles per slide.
    `resize_on_device` (default True) makes the loader stop at the patch size and resizes to
    the encoder input after it, on the device (antialiased bilinear; uint8 on the CPU); False
    resizes in the loader with cv2 INTER_AREA (the behaviour before this option).
    With `decode_on_device`, tiles that are exactly one stored JPEG tile leave the loader
    undecoded and are decoded in batches on the device (nvJPEG on CUDA, checked against
    libjpeg on the first tile; libjpeg-turbo through torchvision on a CPU).
    With `resume`, each finished output is also kept under :func:`resume_path` until the whole
    batch has succeeded, and a kept output whose slide file, coords, encoder, weights and
    provenance still match is put back instead of encoding the slide again.
    """
    if not len(slides) == len(coords_h5) == len(out_h5):
        raise ValueError(
            f"{len(slides)} slides, {len(coords_h5)} coords files, {len(out_h5)} outputs"
        )
    if not 0 <= max_bad_tile_fraction <= 1:
        raise ValueError(f"max_bad_tile_fraction must be in [0, 1], got {max_bad_tile_fraction}")
    jobs = [
        _load_job(s, c, o, keep_finished=resume)
        for s, c, o in zip(slides, coords_h5, out_h5, strict=True)
    ]
    enc = _encoder(encoder, weights)
    dev = _resolve_device(device)
    amp = _autocast_dtype(precision, dev)
    if resize_on_device is None:
        resize_on_device = True
    if decode_on_device and not resize_on_device:
        raise ValueError("decode_on_device needs resize_on_device (tiles resize after decoding)")
    enc.eval()
    enc.to(dev, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    provenance = _provenance(reader, amp, dev, resize_on_device, decode_on_device)

    failures: dict[int, str] = {}
    todo, index = _slides_to_encode(jobs, enc, provenance, failures, reader=reader, resume=resume)
    counts = [len(job.coords) for job in jobs]
    if todo:
        _encode(
            todo,
            index,
            enc,
            dev,
            amp,
            failures,
            provenance=provenance,
            reader=reader,
            batch_size=batch_size,
            num_workers=num_workers,
            channels_last=channels_last,
            fast_tiles=fast_tiles,
            max_bad_tile_fraction=max_bad_tile_fraction,
            prefetch_batches=prefetch_batches,
            resize_on_device=resize_on_device,
            decode_on_device=decode_on_device,
        )
    if failures:
        raise _batch_error(jobs, failures, resume)
    if resume:
        _drop_kept_outputs(jobs)
    return counts


def _encoder(encoder: str | Encoder, weights: str | None) -> Encoder:
    """The encoder to use: a built Encoder as given, or a registered name built with `weights`."""
    if isinstance(encoder, Encoder):
        if weights is not None:
            raise ValueError("pass weights to create_encoder, not with an Encoder instance")
        return encoder
    return create_encoder(encoder, weights=weights)


def _provenance(
    reader: Reader,
    amp: torch.dtype | None,
    dev: torch.device,
    resize_on_device: bool,
    decode_on_device: bool,
) -> dict[str, Any]:
    """How tiles were read, resized and encoded, as recorded in every feature file."""
    provenance = {
        "reader": reader,
        "precision": str(amp).removeprefix("torch.") if amp else "fp32",
        # patch -> encoder input: antialiased bilinear (PIL's filter, within 1 grey level of
        # INTER_AREA) after the loader, or cv2 INTER_AREA in the loader
        "input_resize": input_resize_label(resize_on_device, dev),
    }
    if decode_on_device:  # the decoder may fall back to the CPU: set again once it has checked
        provenance["jpeg_decode"] = _DeviceJpeg(dev).label
    return provenance


def _slides_to_encode(
    jobs: list[SlideJob],
    enc: Encoder,
    provenance: dict[str, Any],
    failures: dict[int, str],
    *,
    reader: Reader,
    resume: bool,
) -> tuple[list[SlideJob], list[int]]:
    """The jobs the loader must run and their positions in `jobs`.

    Kept outputs that still hold are put back, unreadable slides are recorded in `failures`
    and slides without tiles get empty (0, dim) features right away.
    """
    todo: list[SlideJob] = []
    index: list[int] = []  # position in `jobs` of each job in `todo`
    for k, job in enumerate(jobs):
        if resume and _reuse_kept_output(job, enc, provenance):
            continue
        try:
            verify_slide_file(job.slide)
            with open_slide(job.slide, reader):
                pass
        except SlideError as err:
            failures[k] = str(err)
            continue
        if len(job.coords) == 0:
            log.warning("slide %s: 0 tiles; writing empty (0, %d) features", job.slide, enc.dim)
            _write_features(job, np.zeros((0, enc.dim), np.float32), enc, dict(provenance))
            continue
        todo.append(job)
        index.append(k)
    return todo, index


def _batch_error(jobs: list[SlideJob], failures: dict[int, str], resume: bool) -> SlideError:
    """The error naming each failed slide (and, with resume, where the others are kept)."""
    lines = [f"{jobs[k].slide}: {msg}" for k, msg in sorted(failures.items())]
    kept = (
        f"\nThe other slides' features are kept under {jobs[0].out.parent / RESUME_DIR}; "
        "a rerun of this batch reuses them and encodes only the failed slides."
        if resume and len(failures) < len(jobs)
        else ""
    )
    return SlideError(
        f"{len(failures)} of {len(jobs)} slide(s) failed (no output written for them):\n"
        + "\n".join(lines)
        + kept
    )


def _drop_kept_outputs(jobs: list[SlideJob]) -> None:
    """The batch is complete: drop its kept copies (and the directory once empty)."""
    for job in jobs:
        resume_path(job.out).unlink(missing_ok=True)
    for folder in {resume_path(job.out).parent for job in jobs}:
        with contextlib.suppress(OSError):  # not empty: other batches' kept outputs
            folder.rmdir()


def _encode(
    todo: list[SlideJob],
    index: list[int],
    enc: Encoder,
    dev: torch.device,
    amp: torch.dtype | None,
    failures: dict[int, str],
    *,
    provenance: dict[str, Any],
    reader: Reader,
    batch_size: int,
    num_workers: int,
    channels_last: bool,
    fast_tiles: FastMode,
    max_bad_tile_fraction: float,
    prefetch_batches: int,
    resize_on_device: bool,
    decode_on_device: bool = False,
) -> None:
    """Run the loader over `todo`, encode, and write or fail each slide when it completes."""
    cuda = dev.type == "cuda"
    size = enc.input_size
    dataset = TileBatches(
        todo,
        batch_size=batch_size,
        reader=reader,
        input_size=None if resize_on_device else size,
        fast_tiles=fast_tiles,
        raw_jpeg=decode_on_device,
    )
    decoder = _DeviceJpeg(dev) if decode_on_device else None
    loader = DataLoader(
        dataset,
        batch_size=None,  # items are batches already
        shuffle=False,
        num_workers=num_workers,
        pin_memory=cuda,
        prefetch_factor=max(1, prefetch_batches) if num_workers > 0 else None,
        persistent_workers=False,
    )
    batches: Iterable[dict[str, Any]] = loader
    if num_workers == 0:
        batches = _prefetched(loader, prefetch_batches, pin=cuda)
    scale, shift = normalisation(enc, dev)
    autocast = torch.autocast("cuda", dtype=amp) if amp is not None else contextlib.nullcontext()
    outs: list[torch.Tensor] = []
    bad: list[torch.Tensor] = []
    n_fast, error, current = 0, "", 0
    try:
        with torch.inference_mode():
            for batch in batches:
                k = int(batch["slide"])
                if k != current or int(batch["start"]) != sum(len(o) for o in outs):
                    raise RuntimeError(f"tile batches out of order at slide {todo[k].slide}")
                tiles = batch["tiles"].to(dev, non_blocking=True)
                if decoder is not None and len(batch["jpeg_rows"]):
                    _decode_jpeg_tiles(decoder, tiles, batch, todo[k], provenance, reader)
                x = prepare_batch(tiles, size, scale, shift)
                if not channels_last:
                    x = x.contiguous()
                with autocast:
                    outs.append(enc(x).float())
                bad.append(batch["bad"])
                n_fast += int(batch["n_fast"])
                error = error or str(batch["error"])
                job = todo[k]
                if sum(len(o) for o in outs) < len(job.coords):
                    continue
                feats = torch.cat(outs).cpu().numpy()  # one device sync per slide
                bad_idx = torch.cat(bad).numpy()
                _finish_slide(
                    job,
                    feats,
                    bad_idx,
                    n_fast,
                    error,
                    enc,
                    provenance,
                    max_bad_tile_fraction,
                    failures,
                    index[k],
                )
                outs, bad, n_fast, error, current = [], [], 0, "", k + 1
    finally:
        dataset.close()
    if current != len(todo):
        raise RuntimeError(f"loader stopped after {current} of {len(todo)} slides")


def _decode_jpeg_tiles(
    decoder: _DeviceJpeg,
    tiles: torch.Tensor,
    batch: dict[str, Any],
    job: SlideJob,
    provenance: dict[str, Any],
    reader: Reader,
) -> None:
    """Decode a batch's undecoded JPEG tiles into `tiles`; doubtful ones go to the slide reader.

    A tile the device cannot decode, or whose last MCU is libjpeg's grey-128 fill (its data ran
    out early: `mmsurv.features.jpegcheck.ends_in_fill`), is read with `read_region` instead;
    one that the reader rejects too counts as bad.
    """
    rows = batch["jpeg_rows"]
    failed = decoder.into(tiles, rows, jpeg_streams(batch))
    provenance["jpeg_decode"] = decoder.label
    undecoded = set(failed)
    decoded = [r for r in rows.tolist() if r not in undecoded]
    if decoded:
        corner = tiles[torch.tensor(decoded, device=tiles.device), -8:, -8:]
        grey = (corner == 128).flatten(1).all(1)
        if bool(grey.any()):
            failed += [r for r, g in zip(decoded, grey.tolist(), strict=True) if g]
    if not failed:
        return
    start = int(batch["start"])
    bad, error = _reread(job, reader, tiles, start, sorted(failed))
    batch["n_fast"] = int(batch["n_fast"]) - len(failed)
    if bad:
        idx = torch.tensor([start + r for r in bad], dtype=torch.int64)
        batch["bad"] = torch.cat([batch["bad"], idx]).sort().values
        batch["error"] = batch["error"] or error


def _reread(
    job: SlideJob, reader: Reader, tiles: torch.Tensor, start: int, rows: list[int]
) -> tuple[list[int], str]:
    """Read rows of a batch with the slide reader into `tiles`: (rows it rejects, first error)."""
    bad: list[int] = []
    error = ""
    patch = int(job.attrs["patch_size"])
    for r in rows:
        j = start + r
        try:  # a fresh handle per tile: openslide refuses every read after one error
            with open_slide(job.slide, reader) as handle:
                region = read_patch_region(handle, job.coords[j], job.attrs)
        except _TILE_ERRORS as err:
            tiles[r] = 0
            bad.append(r)
            error = error or f"{tile_label(job, j)}: {err}"
            continue
        tile = resize_patch(resize_patch(region, patch), tiles.shape[1])
        tiles[r] = torch.from_numpy(tile).to(tiles.device)
        log.debug(
            "slide %s: %s read with %s after device decoding", job.slide, tile_label(job, j), reader
        )
    return bad, error


def _finish_slide(
    job: SlideJob,
    feats: np.ndarray,
    bad_idx: np.ndarray,
    n_fast: int,
    error: str,
    enc: Encoder,
    provenance: dict[str, Any],
    max_bad_tile_fraction: float,
    failures: dict[int, str],
    k: int,
) -> None:
    """Write a completed slide, or record its failure when too many tiles were unreadable."""
    n = len(job.coords)
    n_bad = len(bad_idx)
    if feats.shape != (n, enc.dim):
        raise RuntimeError(f"{job.slide}: encoded {feats.shape}, expected {(n, enc.dim)}")
    if n_bad / n > max_bad_tile_fraction:
        failures[k] = (
            f"{n_bad} of {n} tiles unreadable ({n_bad / n:.1%} > "
            f"features.max_bad_tile_fraction={max_bad_tile_fraction:g}); first: {error}"
        )
        log.error("slide %s: %s", job.slide, failures[k])
        return
    if n_bad:
        msg = (
            f"slide {job.slide}: {n_bad} of {n} tiles unreadable, encoded as zero images "
            f"(listed in bad_tiles); first: {error}"
        )
        log.warning("%s", msg)
        warnings.warn(msg, stacklevel=2)
    extra = {**provenance, "n_bad_tiles": n_bad, "n_fast_tiles": n_fast, "bad_tiles": bad_idx}
    _write_features(job, feats, enc, extra)
    log.info(
        "slide %s: %d tiles encoded (%d from raw JPEG tiles, %d bad)", job.slide, n, n_fast, n_bad
    )


def extract_slide_features(
    slide_path: str | os.PathLike[str],
    coords_h5: str | os.PathLike[str],
    out_h5: str | os.PathLike[str],
    **kwargs: Any,
) -> int:
    """Encode every tile of one slide into `out_h5` (features + coords); return N.

    A one-slide `extract_features`: same keywords (`encoder` may be a built Encoder, so that
    a batch of slides loads the network once), same atomic output.
    """
    return extract_features([slide_path], [coords_h5], [out_h5], **kwargs)[0]
