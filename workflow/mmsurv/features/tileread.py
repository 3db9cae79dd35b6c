"""Patches read straight from the compressed JPEG tiles of a tiled TIFF (the fast read path).

openslide's per-call overhead, not JPEG decoding, limits `read_region` (docs/slides.md). When a
slide level is stored as JPEG tiles and a patch lies on whole tiles of that level, its pixels
are the decoded tiles themselves: this module reads the tile bytes at their file offsets and
decodes them with libjpeg-turbo (imagecodecs), passing the level's shared JPEGTables and forcing
the colour space the TIFF declares, as openslide does (docs/slides.md).
Every tile is validated first: decoder errors, the stream's marker structure and restart
markers, and libjpeg's grey fill after data that ran out (`mmsurv.features.jpegcheck`; libjpeg
only warns about these, imagecodecs drops the warnings, openslide refuses the tile). A tile
that fails raises TileReadError, so the caller reads it with `read_region`, whose verdict stands.
Anything else (JPEG 2000, deflate, untiled, sparse tiles, patches across the image edge,
fractional level coordinates) is left to the reader's `read_region`.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import imagecodecs
import numpy as np
import tifffile

from mmsurv.features.jpegcheck import McuGrid, check_jpeg, ends_in_fill, restart_interval

__all__ = [
    "FAST_MODES",
    "FastMode",
    "JpegLevel",
    "RawTileReader",
    "TileReadError",
    "TileUnavailable",
    "fast_read_mask",
]

FastMode = Literal["aligned", "any", "never"]
#: aligned: only patches whose grid coincides with the tile grid; any: every patch at integer
#: level coordinates (assembled from the tiles it overlaps); never: always `read_region`.
FAST_MODES: tuple[str, ...] = ("aligned", "any", "never")

_JPEG = 7  # TIFF Compression tag value of "new-style" JPEG
_PHOTOMETRIC_RGB, _PHOTOMETRIC_YCBCR = 2, 6


class TileReadError(OSError):
    """A stored tile could not be read or decoded (corrupt or truncated data)."""


class TileUnavailable(LookupError):
    """The fast path cannot serve this region; read it with the reader's `read_region`."""


@dataclass(frozen=True)
class JpegLevel:
    """Where the JPEG tiles of one pyramid level lie in the file and how to decode them."""

    page: int
    width: int
    height: int
    tile_width: int
    tile_height: int
    offsets: np.ndarray  # (n_tiles,) int64, row-major
    counts: np.ndarray  # (n_tiles,) int64; 0 = tile not stored (sparse)
    tables: bytes | None  # JPEGTables shared by the abbreviated tile streams
    colorspace: str | None  # colour space of the JPEG samples to force; None = from the stream
    restart_interval: int = 0  # MCUs per restart interval set by the shared tables (DRI)

    @property
    def n_cols(self) -> int:
        """Tiles per row."""
        return -(-self.width // self.tile_width)


def _jpeg_level(page: tifffile.TiffPage, index: int) -> JpegLevel | str:
    """The level's JpegLevel, or why its tiles cannot be decoded here."""
    if not page.is_tiled:
        return "not tiled"
    if page.compression != _JPEG:
        return f"compression {page.compression!r} is not JPEG"
    if page.photometric not in (_PHOTOMETRIC_RGB, _PHOTOMETRIC_YCBCR):
        return f"photometric {page.photometric!r} is neither RGB nor YCbCr"
    if page.samplesperpixel != 3 or page.bitspersample != 8 or page.planarconfig != 1:
        return "not 8-bit interleaved 3-sample RGB"
    if page.imagedepth != 1 or page.tiledepth != 1:
        return "volumetric tiles"
    # Aperio writes RGB samples without a JFIF/Adobe marker: only the photometric tag tells a
    # decoder not to apply the YCbCr transform (tifffile and openslide do the same).
    colorspace = "RGB" if page.photometric == _PHOTOMETRIC_RGB and not page.is_jfif else None
    try:
        interval = restart_interval(page.jpegtables)
    except ValueError as err:
        return str(err)
    return JpegLevel(
        page=index,
        width=int(page.imagewidth),
        height=int(page.imagelength),
        tile_width=int(page.tilewidth),
        tile_height=int(page.tilelength),
        offsets=np.asarray(page.dataoffsets, dtype=np.int64),
        counts=np.asarray(page.databytecounts, dtype=np.int64),
        tables=page.jpegtables,
        colorspace=colorspace,
        restart_interval=interval,
    )


_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"
# APP14 "Adobe" segment with transform 0: the three components are RGB, not YCbCr. Without it
# (or JFIF) a decoder guesses YCbCr for 3 components, which miscolours Aperio's RGB tiles.
_ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"


def standalone_jpeg(data: bytes, tables: bytes | None, colorspace: str | None) -> bytes:
    """A TIFF tile's abbreviated JPEG stream as a complete JPEG file any decoder reads.

    Merges the level's shared JPEGTables (quantisation and Huffman tables) into the stream
    and, when the samples are RGB (``colorspace == "RGB"``, the Aperio case), adds an Adobe
    marker saying so. libjpeg-turbo decodes the result to the same pixels as openslide.
    """
    if data[:2] != _SOI:
        raise ValueError("tile data does not start with a JPEG SOI marker")
    head = _SOI
    if tables:
        if tables[:2] != _SOI or tables[-2:] != _EOI:
            raise ValueError("JPEGTables is not an SOI ... EOI table stream")
        head = tables[:-2]
    if colorspace == "RGB":
        head = head[:2] + _ADOBE_RGB + head[2:]
    return head + data[2:]


class RawTileReader:
    """Decodes regions of a tiled-JPEG TIFF from its tiles; one per process (uses `pread`).

    `level_dimensions` are the reader's (openslide/tiffslide) levels; each is matched to the
    tiled TIFF page of the same size, so level numbers mean the same as in `read_region`.
    Decoded tiles that a patch uses only in part are kept in an LRU cache of `cache_bytes`,
    for neighbouring patches that share them.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        level_dimensions: Sequence[tuple[int, int]],
        *,
        cache_bytes: int = 64 << 20,
    ) -> None:
        self.path = str(path)
        self.levels: list[JpegLevel | None] = []
        self.reasons: list[str] = []
        with tifffile.TiffFile(self.path) as tif:
            pages = [(i, p) for i, p in enumerate(tif.pages) if p.is_tiled]
            used: set[int] = set()
            for w, h in level_dimensions:
                match = next(
                    (
                        (i, p)
                        for i, p in pages
                        if i not in used and (p.imagewidth, p.imagelength) == (w, h)
                    ),
                    None,
                )
                if match is None:
                    self.levels.append(None)
                    self.reasons.append(f"no tiled TIFF page of {w}x{h}")
                    continue
                used.add(match[0])
                level = _jpeg_level(match[1], match[0])
                self.levels.append(level if isinstance(level, JpegLevel) else None)
                self.reasons.append(level if isinstance(level, str) else "")
        self._fd: int | None = os.open(self.path, os.O_RDONLY)
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cache_bytes = int(cache_bytes)
        self._cached = 0

    def level(self, level: int) -> JpegLevel | None:
        """The JPEG layout of `level`, or None when the fast path cannot read it."""
        return self.levels[level] if 0 <= level < len(self.levels) else None

    def _where(self, level: int, lv: JpegLevel, index: int) -> str:
        """The slide, level, tile index and the tile's level coordinates, for error messages."""
        row, col = divmod(index, lv.n_cols)
        x, y = col * lv.tile_width, row * lv.tile_height
        return f"{self.path}: level {level} tile {index} at ({x}, {y})"

    def _checked_bytes(self, level: int, lv: JpegLevel, index: int) -> tuple[bytes, McuGrid | None]:
        """A tile's stored bytes and MCU grid once their JPEG structure checks out."""
        data = self._tile_bytes(level, lv, index)
        check = check_jpeg(data, interval=lv.restart_interval)
        if check.problem:
            raise TileReadError(f"{self._where(level, lv, index)}: {check.problem}")
        return data, check.grid

    def _tile_bytes(self, level: int, lv: JpegLevel, index: int) -> bytes:
        """The stored (compressed) bytes of one tile."""
        offset, count = int(lv.offsets[index]), int(lv.counts[index])
        if count <= 0 or offset <= 0:
            raise TileUnavailable(f"{self.path}: level {level} tile {index} is not stored")
        if self._fd is None:
            raise ValueError(f"{self.path}: RawTileReader is closed")
        data = os.pread(self._fd, count, offset)
        if len(data) != count:
            raise TileReadError(
                f"{self.path}: level {level} tile {index}: {len(data)} of {count} bytes "
                "(file truncated?)"
            )
        return data

    def jpeg(self, level: int, x: int, y: int, width: int, height: int) -> bytes:
        """The region as one complete JPEG file, undecoded, when it is exactly one stored tile.

        For decoders that take whole files (nvJPEG through torchvision.io.decode_jpeg on a
        GPU): see :func:`standalone_jpeg`. Other regions raise TileUnavailable, and so do
        streams with restart intervals: the grey-fill check of each interval needs the decoded
        pixels here (`ends_in_fill`); the caller checks the last MCU of the others after decoding.
        A stream whose structure is damaged raises TileReadError.
        """
        lv = self.level(level)
        if lv is None:
            raise TileUnavailable(f"{self.path}: level {level} has no JPEG tiles")
        tw, th = lv.tile_width, lv.tile_height
        whole = (x % tw, y % th, width, height) == (0, 0, tw, th)
        if not whole or x + tw > lv.width or y + th > lv.height:
            raise TileUnavailable(f"{self.path}: region is not one whole tile inside level {level}")
        index = (y // th) * lv.n_cols + x // tw
        data, grid = self._checked_bytes(level, lv, index)
        if grid is not None and grid.interval:
            raise TileUnavailable(f"{self._where(level, lv, index)} has restart intervals")
        try:
            return standalone_jpeg(data, lv.tables, lv.colorspace)
        except ValueError as err:
            raise TileReadError(f"{self.path}: level {level} tile at ({x}, {y}): {err}") from err

    def _tile(self, level: int, lv: JpegLevel, index: int, keep: bool) -> np.ndarray:
        """Decode one tile (tile_height, tile_width, 3), from the cache when it is there."""
        key = (level, index)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        data, grid = self._checked_bytes(level, lv, index)
        try:
            tile = imagecodecs.jpeg8_decode(
                data, tables=lv.tables, colorspace=lv.colorspace, outcolorspace="RGB"
            )
        except (RuntimeError, ValueError) as err:
            raise TileReadError(f"{self._where(level, lv, index)}: {err}") from err
        if tile.shape != (lv.tile_height, lv.tile_width, 3):
            raise TileReadError(
                f"{self._where(level, lv, index)} decodes to {tile.shape}, "
                f"expected {(lv.tile_height, lv.tile_width, 3)}"
            )
        if ends_in_fill(tile, grid):
            raise TileReadError(
                f"{self._where(level, lv, index)} ends in libjpeg's grey fill "
                "(entropy-coded data ran out early?)"
            )
        if keep and self._cache_bytes > 0:
            self._cache[key] = tile
            self._cached += tile.nbytes
            while self._cached > self._cache_bytes and self._cache:
                _, old = self._cache.popitem(last=False)
                self._cached -= old.nbytes
        return tile

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """RGB uint8 (height, width, 3) at level coordinates (x, y), inside the level."""
        lv = self.level(level)
        if lv is None:
            reason = self.reasons[level] if 0 <= level < len(self.reasons) else "no such level"
            raise TileUnavailable(f"{self.path}: level {level}: {reason}")
        if x < 0 or y < 0 or x + width > lv.width or y + height > lv.height:
            raise TileUnavailable(f"{self.path}: region crosses the edge of level {level}")
        tw, th = lv.tile_width, lv.tile_height
        c0, c1 = x // tw, (x + width - 1) // tw
        r0, r1 = y // th, (y + height - 1) // th
        if (c0, r0) == (c1, r1) and (x % tw, y % th, width, height) == (0, 0, tw, th):
            return self._tile(level, lv, r0 * lv.n_cols + c0, keep=False)
        out = np.empty((height, width, 3), np.uint8)
        for r in range(r0, r1 + 1):
            ty0, ty1 = max(y, r * th), min(y + height, (r + 1) * th)
            for c in range(c0, c1 + 1):
                tx0, tx1 = max(x, c * tw), min(x + width, (c + 1) * tw)
                whole = (tx1 - tx0, ty1 - ty0) == (tw, th)
                tile = self._tile(level, lv, r * lv.n_cols + c, keep=not whole)
                out[ty0 - y : ty1 - y, tx0 - x : tx1 - x] = tile[
                    ty0 - r * th : ty1 - r * th, tx0 - c * tw : tx1 - c * tw
                ]
        return out

    def close(self) -> None:
        """Close the file descriptor and drop the cache."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._cache.clear()
        self._cached = 0

    def __enter__(self) -> RawTileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fast_read_mask(
    coords: np.ndarray,
    *,
    read_level: int,
    read_size: int,
    downsample: float,
    level: JpegLevel | None,
    mode: FastMode,
) -> np.ndarray:
    """Which patches (level-0 coords) the raw-tile path reads; the rest use `read_region`.

    A patch qualifies when the level is JPEG-tiled, its level coordinates are integers (so
    `read_region` copies pixels without interpolation) and it lies inside the level; in
    `aligned` mode it must also lie on the tile grid (patch size a multiple or divisor of the
    tile size, origin on a multiple of the smaller of the two).
    """
    if mode not in FAST_MODES:
        raise ValueError(f"fast read mode must be one of {FAST_MODES}, got {mode!r}")
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    none = np.zeros(len(coords), dtype=bool)
    if mode == "never" or level is None or read_level < 0 or not downsample > 0:
        return none
    exact = coords / float(downsample)
    px = np.rint(exact).astype(np.int64)
    ok = (np.abs(exact - px) < 1e-6).all(axis=1)
    ok &= (px >= 0).all(axis=1)
    ok &= (px[:, 0] + read_size <= level.width) & (px[:, 1] + read_size <= level.height)
    if mode == "aligned":
        for axis, tile in ((0, level.tile_width), (1, level.tile_height)):
            step = min(read_size, tile)
            if max(read_size, tile) % step:
                return none
            ok &= px[:, axis] % step == 0
    return ok
