"""Write synthetic pyramidal slides in Aperio SVS layout (readable by openslide and tiffslide)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import imagecodecs
import numpy as np
import tifffile

from mmsurv.io import atomic_path

__all__ = ["write_svs", "corrupt_tiles", "damage_jpeg_tiles", "truncate_file"]

JpegStyle = Literal["tifffile", "aperio"]
Compression = Literal["jpeg", "deflate"]

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


def _jpeg_segments(stream: bytes) -> list[tuple[int, bytes]]:
    """Split a JPEG stream after SOI into (marker, segment bytes); SOS runs to the end."""
    if stream[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream (no SOI marker)")
    out, i = [], 2
    while i < len(stream):
        if stream[i] != 0xFF:
            raise ValueError(f"malformed JPEG stream at byte {i}")
        marker = stream[i + 1]
        if marker == 0xDA:  # start of scan: entropy-coded data up to and including EOI
            out.append((marker, stream[i:]))
            break
        end = i + 2 + int.from_bytes(stream[i + 2 : i + 4], "big")
        out.append((marker, stream[i:end]))
        i = end
    return out


def _aperio_jpeg_tile(tile: np.ndarray, quality: int) -> tuple[bytes, bytes]:
    """Encode a tile as Aperio does: (JPEGTables, abbreviated RGB stream without APP markers).

    The stream holds RGB samples (no YCbCr transform), has no JFIF/Adobe marker and uses
    component ids 1, 2, 3, so a plain JPEG decoder takes it for YCbCr and gets the colours
    wrong; only the TIFF PhotometricInterpretation (RGB) says how to decode it.
    """
    full = imagecodecs.jpeg8_encode(tile, level=quality, colorspace="RGB", outcolorspace="RGB")
    tables, body = bytearray(b"\xff\xd8"), bytearray(b"\xff\xd8")
    for marker, seg in _jpeg_segments(full):
        if marker in (0xDB, 0xC4):  # quantisation and Huffman tables go to JPEGTables
            tables += seg
        elif 0xE0 <= marker <= 0xEF:  # APPn (JFIF, Adobe): Aperio tiles carry none
            continue
        elif marker == 0xC0:  # SOF0: component ids -> 1, 2, 3
            seg = bytearray(seg)
            for k in range(seg[9]):
                seg[10 + 3 * k] = k + 1
            body += seg
        elif marker == 0xDA:  # SOS: the same ids
            seg = bytearray(seg)
            for k in range(seg[4]):
                seg[5 + 2 * k] = k + 1
            body += seg
        else:
            body += seg
    return bytes(tables + b"\xff\xd9"), bytes(body)


def _aperio_jpeg_level(img: np.ndarray, tile: int, quality: int) -> tuple[bytes, list[bytes]]:
    """Pre-encoded tiles of one level (row-major, edge tiles zero-padded) and their tables."""
    height, width = img.shape[:2]
    tables: set[bytes] = set()
    tiles: list[bytes] = []
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            block = np.zeros((tile, tile, 3), np.uint8)
            part = img[y : y + tile, x : x + tile]
            block[: part.shape[0], : part.shape[1]] = part
            tab, body = _aperio_jpeg_tile(block, quality)
            tables.add(tab)
            tiles.append(body)
    if len(tables) != 1:
        raise RuntimeError("libjpeg produced different tables for one quality setting")
    return tables.pop(), tiles


def _check_svs_args(
    path: Path,
    rgb: np.ndarray,
    mpp: float | None,
    tile: int,
    downsamples: Sequence[int],
    jpeg_style: str,
    compression: str,
) -> list[int]:
    """Validate write_svs' arguments; the sorted, distinct downsamples (starting with 1)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"write_svs({path}): expected an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}"
        )
    if mpp is not None and not mpp > 0:
        raise ValueError(f"write_svs({path}): mpp must be > 0, got {mpp}")
    if jpeg_style not in ("tifffile", "aperio") or compression not in ("jpeg", "deflate"):
        raise ValueError(
            f"write_svs({path}): jpeg_style must be tifffile|aperio and compression "
            f"jpeg|deflate, got {jpeg_style!r}, {compression!r}"
        )
    if tile % 16:
        raise ValueError(f"write_svs({path}): tile must be a multiple of 16, got {tile}")
    ds = sorted({int(d) for d in downsamples})
    if not ds or ds[0] != 1:
        raise ValueError(f"write_svs({path}): downsamples must start with 1, got {downsamples}")
    return ds


def _resolution(mpp: float | None, d: float) -> dict[str, Any]:
    """TIFF resolution tags of a level at downsample `d`; none when the MPP is unknown."""
    if mpp is None:
        return {}
    px_per_cm = 1e4 / (mpp * d)
    return {"resolution": (px_per_cm, px_per_cm), "resolutionunit": "CENTIMETER"}


def _write_level(
    tif: tifffile.TiffWriter,
    img: np.ndarray,
    desc: str,
    tile: int,
    quality: int,
    resolution: dict[str, Any],
    common: dict[str, Any],
    aperio: bool,
) -> None:
    """Write one tiled pyramid level; `aperio`: pre-encoded RGB JPEG tiles with shared tables."""
    if aperio:
        tables, tiles = _aperio_jpeg_level(img, tile, quality)
        data: np.ndarray | Iterable[bytes] = iter(tiles)
        extra = {
            "shape": img.shape,
            "dtype": np.uint8,
            "jpegtables": tables,
            "subsampling": (1, 1),
            "compressionargs": {"outcolorspace": "RGB"},  # photometric RGB, as Aperio
        }
    else:
        data, extra = img, {}
    kwargs = {**common, **extra}
    tif.write(data, tile=(tile, tile), description=desc, **resolution, **kwargs)


def write_svs(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    *,
    mpp: float | None,
    app_mag: float | None,
    tile: int = 256,
    downsamples: Sequence[int] = (1, 4, 16),
    quality: int = 90,
    jpeg_style: JpegStyle = "tifffile",
    compression: Compression = "jpeg",
) -> None:
    """Write ``rgb`` as a tiled JPEG pyramid in Aperio SVS layout, atomically.

    Layout: IFD0 = level 0 (tiled, Aperio description), IFD1 = small untiled thumbnail
    (tiffslide drops pyramid level 1 without it), IFD2.. = reduced levels (tiled). Levels
    that would be smaller than one tile in both dimensions are skipped. Resolution tags
    are written only when ``mpp`` is known, so a slide without MPP really has none.

    ``jpeg_style="tifffile"`` stores YCbCr JPEG tiles with JFIF headers (tifffile's default);
    ``"aperio"`` stores what Aperio scanners write: RGB-encoded abbreviated JPEG tiles with
    one shared JPEGTables tag, photometric RGB and no colour-space marker in the stream.
    ``compression="deflate"`` writes lossless non-JPEG tiles (readers' general path).
    """
    path = Path(path)
    rgb = np.ascontiguousarray(rgb)
    ds = _check_svs_args(path, rgb, mpp, tile, downsamples, jpeg_style, compression)
    height, width = rgb.shape[:2]

    levels: list[tuple[int, np.ndarray]] = []
    for d in ds:
        w, h = width // d, height // d
        if d > 1 and w < tile and h < tile:
            continue
        levels.append((d, rgb if d == 1 else _resize(rgb, w, h)))

    scale = THUMBNAIL_MAX_SIDE / max(width, height)
    thumb = _resize(rgb, max(1, round(width * scale)), max(1, round(height * scale)))

    if compression == "jpeg":
        common = {
            "photometric": "rgb",
            "compression": "jpeg",
            "compressionargs": {"level": quality},
            "metadata": None,
        }
    else:
        common = {"photometric": "rgb", "compression": "zlib", "metadata": None}

    aperio = compression == "jpeg" and jpeg_style == "aperio"

    def write_level(tif: tifffile.TiffWriter, img: np.ndarray, desc: str, d: float) -> None:
        _write_level(tif, img, desc, tile, quality, _resolution(mpp, d), common, aperio)

    kind = "JPEG/RGB" if compression == "jpeg" else "Deflate/RGB"
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=False) as tif:
        desc0 = _aperio_description(width, height, tile, quality, mpp, app_mag)
        write_level(tif, levels[0][1], desc0.replace("JPEG/RGB", kind), 1)
        tdesc = (
            f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}]"
            f" ({tile}x{tile}) -> {thumb.shape[1]}x{thumb.shape[0]} {kind} Q={quality}"
        )
        tif.write(thumb, description=tdesc, rowsperstrip=16, **common)
        for d, img in levels[1:]:
            desc = (
                f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}]"
                f" ({tile}x{tile}) -> {img.shape[1]}x{img.shape[0]} {kind} Q={quality}"
            )
            write_level(tif, img, desc, d)


def corrupt_tiles(
    path: str | os.PathLike[str], tiles: Sequence[int], *, page: int = 0, seed: int = 0
) -> None:
    """Overwrite the stored bytes of some tiles of one TIFF page with random bytes, in place.

    The byte counts stay as they are, so the file still opens and only those tiles fail to
    decode, as a scanner's corrupt tile does. For fault-injection tests.
    """
    with tifffile.TiffFile(path) as tif:
        pg = tif.pages[page]
        spans = [(int(pg.dataoffsets[t]), int(pg.databytecounts[t])) for t in tiles]
    rng = np.random.default_rng(seed)
    with open(path, "r+b") as fh:
        for offset, count in spans:
            fh.seek(offset)
            fh.write(rng.integers(0, 256, count, dtype=np.uint8).tobytes())


def _entropy_start(stream: bytes) -> int:
    """Offset of the first entropy-coded byte of a JPEG stream (just after its SOS segment)."""
    sos = stream.find(b"\xff\xda")
    if sos < 0:
        raise ValueError("JPEG stream without an SOS marker")
    return sos + 2 + int.from_bytes(stream[sos + 2 : sos + 4], "big")


def damage_jpeg_tiles(
    path: str | os.PathLike[str],
    tiles: Sequence[int],
    *,
    how: Literal["zero", "cut"] = "zero",
    start: float = 0.3,
    fraction: float = 0.4,
    page: int = 0,
) -> None:
    """Damage the entropy-coded data of some JPEG tiles in place, keeping the markers around it.

    ``"zero"`` overwrites `fraction` of each tile's entropy-coded data, from `start` (as a
    fraction of it), with zero bytes, as a file with zeroed blocks has; ``"cut"`` ends the data
    at `start` with an EOI marker (zero bytes after it keep the byte count), as an interrupted
    write does. libjpeg only warns about both and decodes wrong pixels; openslide refuses them.
    """
    if how not in ("zero", "cut") or not 0 <= start < 1 or not 0 < fraction <= 1 - start:
        raise ValueError(f"damage_jpeg_tiles: bad how={how!r}, start={start}, fraction={fraction}")
    with tifffile.TiffFile(path) as tif:
        pg = tif.pages[page]
        spans = [(int(pg.dataoffsets[t]), int(pg.databytecounts[t])) for t in tiles]
    with open(path, "r+b") as fh:
        for offset, count in spans:
            fh.seek(offset)
            stream = bytearray(fh.read(count))
            first = _entropy_start(bytes(stream))
            n = count - 2 - first  # entropy-coded bytes before the EOI marker
            a = first + int(n * start)
            if how == "zero":
                stream[a : a + max(1, int(n * fraction))] = bytes(max(1, int(n * fraction)))
            else:
                stream[a:] = b"\xff\xd9" + bytes(count - a - 2)
            fh.seek(offset)
            fh.write(stream)


def truncate_file(path: str | os.PathLike[str], keep_fraction: float) -> int:
    """Cut a file to `keep_fraction` of its size, as an interrupted download does; new size."""
    if not 0 < keep_fraction < 1:
        raise ValueError(f"keep_fraction must be in (0, 1), got {keep_fraction}")
    size = int(os.path.getsize(path) * keep_fraction)
    os.truncate(path, size)
    return size
