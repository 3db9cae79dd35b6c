"""Tile loading: batches of one slide's tiles read in order, by workers or a prefetch thread."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch
from torch.utils.data import Dataset, get_worker_info

from mmsurv.features.tileread import (
    FAST_MODES,
    FastMode,
    RawTileReader,
    TileReadError,
    TileUnavailable,
    fast_read_mask,
)
from mmsurv.tiling.wsi import Reader, open_slide, read_patch_region, resize_patch

__all__ = ["SlideJob", "TileBatches", "tile_label"]

log = logging.getLogger(__name__)

#: Errors a reader or decoder raises on a bad tile (libjpeg: RuntimeError; openslide: its own).
_TILE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, LookupError)
try:
    import openslide

    _TILE_ERRORS += (openslide.OpenSlideError,)
except ImportError:  # pragma: no cover - openslide is a dependency
    pass


@dataclass(frozen=True)
class SlideJob:
    """One slide to encode: its file, tile coords and tiling attrs, and its output path."""

    slide: str
    coords: np.ndarray
    attrs: dict[str, Any]
    out: Path
    keep_finished: bool = False  # also link the finished output under resume_path(out)


def tile_label(job: SlideJob, j: int) -> str:
    """'tile j at (x, y)' with plain-int level-0 coordinates, for logs and recorded errors."""
    x, y = (int(v) for v in job.coords[j])
    return f"tile {j} at ({x}, {y})"


class _SlideState:
    """Reading state of one slide in one process: reader handle, raw tiles, fast-path mask."""

    def __init__(
        self,
        job: SlideJob,
        reader: Reader,
        fast_tiles: FastMode,
        size: int | None,
        raw_jpeg: bool = False,
    ) -> None:
        self.job, self.reader = job, reader
        self.level = int(job.attrs["read_level"])
        self.read_size = int(job.attrs["read_size"])
        self.patch_size = int(job.attrs["patch_size"])
        self.size = self.patch_size if size is None else int(size)
        # undecoded JPEG files for the device when a patch is exactly one stored tile
        self.raw_jpeg = raw_jpeg and self.size == self.patch_size == self.read_size
        self.handle: Any = open_slide(job.slide, reader)
        self.downsample = float(self.handle.level_downsamples[self.level])
        self.raw: RawTileReader | None = None
        self.fast = np.zeros(len(job.coords), dtype=bool)
        if fast_tiles != "never":
            try:
                self.raw = RawTileReader(job.slide, self.handle.level_dimensions)
            except (tifffile.TiffFileError, OSError, ValueError) as err:  # not a TIFF: general
                log.debug("slide %s: no raw tile access (%s)", job.slide, err)
            else:
                self.fast = fast_read_mask(
                    job.coords,
                    read_level=self.level,
                    read_size=self.read_size,
                    downsample=self.downsample,
                    level=self.raw.level(self.level),
                    mode=fast_tiles,
                )

    def read(self, j: int) -> tuple[np.ndarray | bytes, bool]:
        """Tile j at the encoder's input size and whether the raw-tile path served it.

        With ``raw_jpeg``, a tile that is exactly one stored JPEG tile comes back undecoded,
        as a complete JPEG file (bytes), for the caller to decode on its device.
        """
        x, y = (int(v) for v in self.job.coords[j])
        region, fast = None, False
        if self.fast[j] and self.raw is not None:
            px, py = round(x / self.downsample), round(y / self.downsample)
            if self.raw_jpeg:
                with contextlib.suppress(TileUnavailable, TileReadError):  # general path decides
                    return self.raw.jpeg(self.level, px, py, self.read_size, self.read_size), True
            try:
                region = self.raw.read_region(self.level, px, py, self.read_size, self.read_size)
                fast = True
            except TileUnavailable:
                pass
            except TileReadError as err:  # damaged or doubtful tile: read_region's verdict stands
                log.debug("%s; reading it with %s", err, self.reader)
        if region is None:
            try:
                region = read_patch_region(self.handle, (x, y), self.job.attrs)
            except _TILE_ERRORS:
                self._reopen()  # openslide refuses every read after one error
                raise
        tile = resize_patch(region, self.patch_size)
        return resize_patch(tile, self.size), fast

    def _reopen(self) -> None:
        """Replace the reader handle (an openslide handle is unusable after a read error)."""
        self.handle.close()
        self.handle = open_slide(self.job.slide, self.reader)

    def close(self) -> None:
        """Close the reader handle and the raw tile reader."""
        self.handle.close()
        if self.raw is not None:
            self.raw.close()


class TileBatches(Dataset):
    """Item i = one batch of tiles of one slide, as uint8 (B, S, S, 3) plus read statistics.

    S is `input_size`, or the slide's patch size when None (the caller then resizes on the
    device, which is cheaper than cv2 on the loader's cores when a GPU encodes).

    Items run through the slides in order, so a DataLoader with workers (or the background
    thread of `extract_features`) reads the next slide's tiles while the current one is
    encoded. Each process opens a slide once, when it first reads from it, and closes it when
    it moves to the next. A tile that cannot be read is replaced by zeros and reported in
    `bad` (indices within the slide); the caller decides whether the slide is still usable.
    """

    def __init__(
        self,
        jobs: Sequence[SlideJob],
        *,
        batch_size: int,
        reader: Reader = "openslide",
        input_size: int | None = 224,
        fast_tiles: FastMode = "aligned",
        raw_jpeg: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if fast_tiles not in FAST_MODES:
            raise ValueError(f"fast_tiles must be one of {FAST_MODES}, got {fast_tiles!r}")
        self.jobs = list(jobs)
        self.reader, self.input_size, self.fast_tiles = reader, input_size, fast_tiles
        self.raw_jpeg = raw_jpeg
        self.items = [
            (k, start, min(start + batch_size, len(job.coords)))
            for k, job in enumerate(self.jobs)
            for start in range(0, len(job.coords), batch_size)
        ]
        self._state: tuple[int, int, _SlideState] | None = None  # (pid, slide index, state)

    def __len__(self) -> int:
        return len(self.items)

    def _slide(self, k: int) -> _SlideState:
        """This process's reading state for slide k (opened on first use)."""
        pid = os.getpid()
        if self._state is not None and self._state[:2] == (pid, k):
            return self._state[2]
        if self._state is not None and self._state[0] == pid:
            self._state[2].close()
        state = _SlideState(
            self.jobs[k], self.reader, self.fast_tiles, self.input_size, self.raw_jpeg
        )
        self._state = (pid, k, state)
        return state

    def __getitem__(self, i: int) -> dict[str, Any]:
        k, start, stop = self.items[i]
        state = self._slide(k)
        size = state.size
        buf = torch.empty((stop - start, size, size, 3), dtype=torch.uint8)
        if get_worker_info() is not None:
            buf.share_memory_()  # filled in place, so the DataLoader sends it without a copy
        tiles = buf.numpy()
        bad: list[int] = []
        jpeg_rows: list[int] = []
        jpeg: list[bytes] = []
        n_fast, error = 0, ""
        for r, j in enumerate(range(start, stop)):
            try:
                tile, fast = state.read(j)
            except _TILE_ERRORS as err:
                tiles[r] = 0
                bad.append(j)
                error = error or f"{tile_label(state.job, j)}: {err}"
                continue
            if isinstance(tile, bytes):  # decoded by the caller (zeros if that fails)
                tiles[r] = 0
                jpeg_rows.append(r)
                jpeg.append(tile)
            else:
                tiles[r] = tile
            n_fast += int(fast)
        item = {
            "slide": k,
            "start": start,
            "tiles": buf,
            "bad": torch.tensor(bad, dtype=torch.int64),
            "n_fast": n_fast,
            "error": error,
        }
        if self.raw_jpeg:  # one buffer: a worker sends every tensor in its own shared memory
            item["jpeg_rows"] = torch.tensor(jpeg_rows, dtype=torch.int64)
            item["jpeg_sizes"] = torch.tensor([len(b) for b in jpeg], dtype=torch.int64)
            item["jpeg"] = torch.frombuffer(
                bytearray().join(jpeg) or bytearray(1), dtype=torch.uint8
            )
        return item

    def close(self) -> None:
        """Close the slide this process has open."""
        if self._state is not None and self._state[0] == os.getpid():
            self._state[2].close()
        self._state = None


class _Raised:
    """An exception carried from the prefetch thread to the consumer."""

    def __init__(self, err: BaseException) -> None:
        self.err = err


def _prefetched(items: Iterable[Any], depth: int, pin: bool) -> Iterator[Any]:
    """Iterate `items` in a background thread, `depth` ahead (readers release the GIL)."""
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if pin:
                    item["tiles"] = item["tiles"].pin_memory()
                if not put(item):
                    return
        except BaseException as err:  # noqa: BLE001 - re-raised in the consumer
            put(_Raised(err))
        else:
            put(done)

    thread = threading.Thread(target=produce, name="tile-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, _Raised):
                raise item.err
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)
