"""mmsurv.features.tileread: raw JPEG tiles give the same pixels as the readers' read_region."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import openslide
import pytest
import tifffile
import torch

from mmsurv.demo import synth
from mmsurv.features.jpegcheck import check_jpeg, ends_in_fill, restart_interval
from mmsurv.features.tileread import (
    RawTileReader,
    TileReadError,
    TileUnavailable,
    fast_read_mask,
    standalone_jpeg,
)
from mmsurv.tiling import wsi
from mmsurv.tiling.wsi import open_slide, read_patch_region, tile_slide


@dataclass(frozen=True)
class Slides:
    """Synthetic slides of one tissue field, in the layouts the fast path must tell apart."""

    aperio20: Path  # Aperio-style RGB JPEG tiles + JPEGTables, 256 px tiles, 20x
    aperio40: Path  # the same at 40x: 512 px reads = 2x2 tiles
    tile512: Path  # 20x, 512 px tiles: 4 patches per tile
    ds2: Path  # 40x with a downsample-2 level: 20x patches read at level 1
    tile240: Path  # 20x, 240 px tiles: the 256 px patch grid does not follow them
    deflate: Path  # 20x, lossless deflate tiles: no JPEG


@pytest.fixture(scope="module")
def slides(synth_slides, tmp_path_factory) -> Slides:
    """Write the layouts once for this module (~1 s)."""
    d = tmp_path_factory.mktemp("tileread")
    rgb20 = synth_slides.rgb20
    h, w = rgb20.shape[:2]
    rgb40 = cv2.resize(rgb20, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    paths = {k: d / f"{k}.svs" for k in Slides.__dataclass_fields__}
    kw20 = {"mpp": 0.5, "app_mag": 20, "downsamples": (1, 4)}
    synth.write_svs(paths["aperio20"], rgb20, jpeg_style="aperio", **kw20)
    synth.write_svs(
        paths["aperio40"], rgb40, mpp=0.25, app_mag=40, downsamples=(1, 4, 16), jpeg_style="aperio"
    )
    synth.write_svs(paths["tile512"], rgb20, tile=512, jpeg_style="aperio", **kw20)
    synth.write_svs(paths["ds2"], rgb40, mpp=0.25, app_mag=40, downsamples=(1, 2, 16))
    synth.write_svs(paths["tile240"], rgb20, tile=240, jpeg_style="aperio", **kw20)
    synth.write_svs(paths["deflate"], rgb20, compression="deflate", **kw20)
    return Slides(**paths)


def _fast(path: Path, result: wsi.TilingResult, mode: str) -> tuple[RawTileReader, np.ndarray]:
    """The raw reader of a slide and which of the result's patches it serves."""
    with open_slide(path) as s:
        raw = RawTileReader(path, s.level_dimensions)
        level = result.attrs["read_level"]
        mask = fast_read_mask(
            result.coords,
            read_level=level,
            read_size=result.attrs["read_size"],
            downsample=s.level_downsamples[level],
            level=raw.level(level),
            mode=mode,
        )
    return raw, mask


@pytest.mark.parametrize("name", ["aperio20", "aperio40", "tile512", "ds2", "tifffile20"])
@pytest.mark.parametrize("reader", wsi.READERS)
def test_fast_path_pixels_equal_read_region(slides, synth_slides, name, reader):
    # JPEG tolerance: none. Both sides decode with libjpeg-turbo's default (islow) IDCT, so the
    # pixels are identical; the tifffile-style slide is YCbCr 4:2:0, the Aperio-style one RGB.
    path = synth_slides.s20 if name == "tifffile20" else getattr(slides, name)
    result = tile_slide(path, reader=reader)
    raw, mask = _fast(path, result, "aligned")
    assert len(result.coords) > 10 and mask.all()
    level, size = result.attrs["read_level"], result.attrs["read_size"]
    assert (level, size) == {"aperio40": (0, 512), "ds2": (1, 256)}.get(name, (0, 256))
    with raw, open_slide(path, reader) as s:
        ds = s.level_downsamples[level]
        for x, y in result.coords:
            got = raw.read_region(level, round(x / ds), round(y / ds), size, size)
            want = read_patch_region(s, (x, y), result.attrs)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} tile at {(x, y)}")


def test_aperio_tiles_need_the_tiff_colour_space(slides):
    # A plain decoder takes Aperio's marker-less RGB JPEG for YCbCr: the colours come out wrong.
    with tifffile.TiffFile(slides.aperio20) as tif:
        page = tif.pages[0]
        assert page.photometric == 2 and page.jpegtables is not None and not page.is_jfif
        offset, count = page.dataoffsets[9], page.databytecounts[9]
        tables = page.jpegtables
    with open(slides.aperio20, "rb") as fh:
        fh.seek(offset)
        body = fh.read(count)
    merged = body[:2] + tables[2:-2] + body[2:]  # abbreviated stream + its tables
    naive = cv2.imdecode(np.frombuffer(merged, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    with open_slide(slides.aperio20) as s:
        n_cols = -(-s.dimensions[0] // 256)
        ty, tx = divmod(9, n_cols)
        want = np.asarray(s.read_region((tx * 256, ty * 256), 0, (256, 256)))[..., :3]
        with RawTileReader(slides.aperio20, s.level_dimensions) as raw:
            got = raw.read_region(0, tx * 256, ty * 256, 256, 256)
    np.testing.assert_array_equal(got, want)
    assert np.abs(naive.astype(int) - want).mean() > 10


@pytest.mark.parametrize("name", ["aperio20", "tifffile20", "tile512"])
def test_standalone_jpeg_decodes_like_openslide(slides, synth_slides, name):
    """A tile's bytes + JPEGTables (+ Adobe RGB marker for Aperio) = a JPEG file any decoder
    reads (torchvision here; nvJPEG on a GPU) with openslide's pixels; other regions refused."""
    from torchvision.io import ImageReadMode, decode_jpeg

    path = synth_slides.s20 if name == "tifffile20" else getattr(slides, name)
    with open_slide(path) as s, RawTileReader(path, s.level_dimensions) as raw:
        lv = raw.level(0)
        assert lv.colorspace == (None if name == "tifffile20" else "RGB")
        tw = lv.tile_width
        for index in (0, lv.n_cols + 1):
            y, x = divmod(index, lv.n_cols)
            data = raw.jpeg(0, x * tw, y * tw, tw, tw)
            got = (
                decode_jpeg(
                    torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB
                )
                .permute(1, 2, 0)
                .numpy()
            )
            want = np.asarray(s.read_region((x * tw, y * tw), 0, (tw, tw)))[..., :3]
            np.testing.assert_array_equal(got, want, err_msg=f"{name} tile {index}")
        with pytest.raises(TileUnavailable):
            raw.jpeg(0, 128, 0, tw, tw)  # not on the tile grid
        with pytest.raises(TileUnavailable):
            raw.jpeg(0, 0, 0, tw // 2, tw // 2)  # part of a tile
    with pytest.raises(ValueError, match="SOI"):
        standalone_jpeg(b"\x00\x01rest", None, None)
    with pytest.raises(ValueError, match="JPEGTables"):
        standalone_jpeg(b"\xff\xd8rest", b"\xff\xd8tables", "RGB")


def test_unaligned_and_non_jpeg_use_the_general_path(slides):
    r240 = tile_slide(slides.tile240)
    assert r240.attrs["read_size"] == 256  # 240 is 6 % off: not snapped at the 2 % default
    raw, mask = _fast(slides.tile240, r240, "aligned")
    assert len(mask) > 10 and not mask.any()
    # "any" assembles each patch from the (up to 4) tiles it overlaps: still exact
    raw, mask = _fast(slides.tile240, r240, "any")
    assert mask.all()
    with raw, open_slide(slides.tile240) as s:
        for x, y in r240.coords[:12]:
            got = raw.read_region(0, int(x), int(y), 256, 256)
            np.testing.assert_array_equal(got, read_patch_region(s, (x, y), r240.attrs))
    rdef = tile_slide(slides.deflate)
    raw, mask = _fast(slides.deflate, rdef, "any")
    assert raw.level(0) is None and "not JPEG" in raw.reasons[0] and not mask.any()
    with raw, pytest.raises(TileUnavailable, match="not JPEG"):
        raw.read_region(0, 0, 0, 256, 256)
    r20 = tile_slide(slides.aperio20)
    raw, mask = _fast(slides.aperio20, r20, "never")
    raw.close()
    assert not mask.any()
    with pytest.raises(ValueError, match="aligned"):
        fast_read_mask(r20.coords, read_level=0, read_size=256, downsample=1, level=None, mode="x")


def test_snapping_to_the_tile_grid(slides, synth_slides, tmp_path):
    # a 0.252 µm/px scan: 20x patches are 508 px at level 0; snapped to 2 x 256 px tiles
    path = tmp_path / "mpp0252.svs"
    rgb = cv2.resize(synth_slides.rgb20, (3968, 2976))
    synth.write_svs(path, rgb, mpp=0.252, app_mag=40, downsamples=(1, 4, 16), jpeg_style="aperio")
    exact = tile_slide(path, snap_to_tiles=0)
    snapped = tile_slide(path)
    assert exact.attrs["read_size"] == exact.attrs["patch_size_level0"] == 508
    assert snapped.attrs["read_size"] == snapped.attrs["patch_size_level0"] == 512
    assert snapped.attrs["effective_magnification"] == pytest.approx(10 / 0.252 * 256 / 512)
    assert (snapped.coords % 512 == 0).all()
    assert _fast(path, exact, "aligned")[1].sum() == 0
    raw, mask = _fast(path, snapped, "aligned")
    raw.close()
    assert mask.all() and len(mask) > 10
    # 240 px tiles at 20x: 256 -> 240 is beyond a 2 % snap, within a 7 % one
    assert tile_slide(slides.tile240, snap_to_tiles=0.07).attrs["read_size"] == 240


def test_edges_fractions_and_sparse_tiles(slides):
    with open_slide(slides.ds2) as s:
        raw = RawTileReader(slides.ds2, s.level_dimensions)
        lv = raw.level(1)
        w1, h1 = s.level_dimensions[1]
    coords = np.array([[0, 0], [2, 0], [512, 512], [2 * (w1 - 256), 0], [2 * (w1 - 200), 0]])
    mask = fast_read_mask(coords, read_level=1, read_size=256, downsample=2.0, level=lv, mode="any")
    # (2, 0) is at level x = 1 (integer, inside); the last crosses the edge of level 1
    assert mask.tolist() == [True, True, True, True, False]
    aligned = fast_read_mask(
        coords, read_level=1, read_size=256, downsample=2.0, level=lv, mode="aligned"
    )
    assert aligned.tolist() == [True, False, True, w1 % 256 == 0, False]
    odd = fast_read_mask(
        np.array([[1, 0]]), read_level=1, read_size=256, downsample=2.0, level=lv, mode="any"
    )
    assert not odd.any()  # level x = 0.5: read_region interpolates, so the general path reads it
    with raw, pytest.raises(TileUnavailable, match="edge"):
        raw.read_region(1, w1 - 100, 0, 256, 256)
    with open_slide(slides.aperio20) as s:
        sparse = RawTileReader(slides.aperio20, s.level_dimensions[:1])
    lv0 = sparse.level(0)
    sparse.levels[0] = dataclasses.replace(lv0, counts=np.zeros_like(lv0.counts))
    with sparse, pytest.raises(TileUnavailable, match="not stored"):
        sparse.read_region(0, 0, 0, 256, 256)


def test_corrupt_and_truncated_tiles(slides, tmp_path):
    path = tmp_path / "corrupt.svs"
    path.write_bytes(slides.aperio20.read_bytes())
    synth.corrupt_tiles(path, [3])
    with open_slide(path) as s, RawTileReader(path, s.level_dimensions) as raw:
        with pytest.raises(TileReadError, match=r"corrupt.svs: level 0 tile 3"):
            raw.read_region(0, 3 * 256, 0, 256, 256)
        assert raw.read_region(0, 2 * 256, 0, 256, 256).shape == (256, 256, 3)
        with pytest.raises(openslide.OpenSlideError):
            s.read_region((3 * 256, 0), 0, (256, 256))  # openslide fails on it too
    cut = tmp_path / "cut.svs"
    cut.write_bytes(slides.aperio20.read_bytes())
    synth.truncate_file(cut, 0.6)  # level 0 data and the IFDs after it are gone
    for check in (wsi.verify_slide_file, open_slide, tile_slide):
        with pytest.raises(wsi.SlideError, match=r"cut.svs is truncated"):
            check(cut)
    end = tmp_path / "end.svs"
    end.write_bytes(slides.aperio20.read_bytes())
    synth.truncate_file(end, 1 - 50 / end.stat().st_size)  # only the last tile's end is cut
    for check in (wsi.verify_slide_file, open_slide):
        with pytest.raises(wsi.SlideError, match=r"end.svs is truncated"):
            check(end)
    with open_slide(slides.aperio20) as s:
        dims = s.level_dimensions
    with RawTileReader(end, dims) as raw:
        lv = raw.level(1)
        y, x = divmod(lv.offsets.size - 1, lv.n_cols)
        w, h = min(256, lv.width - x * 256), min(256, lv.height - y * 256)
        with pytest.raises(TileReadError, match="end.svs: level 1 .* truncated"):
            raw.read_region(1, x * 256, y * 256, w, h)
    tiny = tmp_path / "head.svs"
    tiny.write_bytes(slides.aperio20.read_bytes()[:64])  # the IFDs themselves are cut
    with pytest.raises(wsi.SlideError, match="head.svs"):
        wsi.verify_slide_file(tiny)
    wsi.verify_slide_file(slides.aperio20)  # intact: no error


def _tile_xy(lv, index):
    """Level coordinates of stored tile `index`."""
    row, col = divmod(index, lv.n_cols)
    return col * lv.tile_width, row * lv.tile_height


@pytest.mark.parametrize("how", ["zero", "cut"])
@pytest.mark.parametrize("name", ["aperio20", "tifffile20"])
def test_partly_zeroed_tiles_are_left_to_openslide(slides, synth_slides, tmp_path, name, how):
    """Entropy-coded data partly zeroed (or ending early) decodes through libjpeg with a mere
    warning, to wrong pixels; openslide refuses such tiles, and so does the fast path now."""
    src = synth_slides.s20 if name == "tifffile20" else getattr(slides, name)
    path = tmp_path / f"{how}.svs"
    path.write_bytes(src.read_bytes())
    with open_slide(path) as s:
        dims = s.level_dimensions
    with RawTileReader(path, dims) as raw:
        lv = raw.level(0)
    damaged = [t for t in range(lv.offsets.size) if t % 12 < 7]  # 28 of 48
    synth.damage_jpeg_tiles(path, damaged, how=how)
    with RawTileReader(path, dims) as raw, RawTileReader(src, dims) as clean:
        for t in range(lv.offsets.size):
            x, y = _tile_xy(lv, t)
            with open_slide(path) as s:  # a fresh handle: openslide fails every read after one
                if t in damaged:
                    with pytest.raises(openslide.OpenSlideError, match="JPEG"):
                        s.read_region((x, y), 0, (256, 256))
                    with pytest.raises(TileReadError, match=rf"{how}.svs: level 0 tile {t} at "):
                        raw.read_region(0, x, y, 256, 256)
                else:  # the good tiles still come from the fast path, with the same pixels
                    got = raw.read_region(0, x, y, 256, 256)
                    np.testing.assert_array_equal(got, read_patch_region(s, (x, y), _ATTRS))
                    np.testing.assert_array_equal(got, clean.read_region(0, x, y, 256, 256))


_ATTRS = {"read_size": 256, "read_level": 0}


def _restart_tiff(path: Path, rgb: np.ndarray, interval: int) -> None:
    """A generic tiled TIFF of JFIF tiles with restart markers every `interval` MCUs (cv2)."""
    h, w = (rgb.shape[0] // 256) * 256, (rgb.shape[1] // 256) * 256
    args = [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_RST_INTERVAL, interval]
    tiles = [
        cv2.imencode(".jpg", np.ascontiguousarray(rgb[y : y + 256, x : x + 256, ::-1]), args)[1]
        for y in range(0, h, 256)
        for x in range(0, w, 256)
    ]
    with tifffile.TiffWriter(path) as tif:
        tif.write(
            iter(t.tobytes() for t in tiles),
            shape=(h, w, 3),
            dtype=np.uint8,
            tile=(256, 256),
            compression="jpeg",
            photometric="ycbcr",
            subsampling=(2, 2),
            metadata=None,
        )


def test_restart_markers_are_checked(synth_slides, tmp_path):
    """Tiles with restart intervals: markers in order and as many as the MCUs need, and an
    interval whose data ran out (libjpeg fills the rest of it with grey 128) is refused."""
    path = tmp_path / "restart.tif"
    _restart_tiff(path, synth_slides.rgb20[:768, :1024], interval=16)
    with open_slide(path) as s:
        dims = s.level_dimensions
        with RawTileReader(path, dims) as raw:
            lv = raw.level(0)
            for t in range(lv.offsets.size):  # pixels as openslide's
                x, y = _tile_xy(lv, t)
                got = raw.read_region(0, x, y, 256, 256)
                np.testing.assert_array_equal(got, read_patch_region(s, (x, y), _ATTRS))
            with pytest.raises(TileUnavailable, match="restart intervals"):
                raw.jpeg(0, 0, 0, 256, 256)  # the device decoder would skip the interval check
            data = raw._tile_bytes(0, lv, 5)
    good = check_jpeg(data)
    assert good.problem is None and good.grid.interval == 16 and good.grid.n_mcus == 256
    rst = [i for i in range(len(data) - 1) if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]
    assert len(rst) == 15
    swapped = bytearray(data)
    swapped[rst[2] + 1], swapped[rst[3] + 1] = data[rst[3] + 1], data[rst[2] + 1]
    assert "restart marker 2 is RST3, expected RST2" in check_jpeg(bytes(swapped)).problem
    dropped = bytearray(data)
    for i in reversed(rst[7:]):  # the last 8 markers: the 7 left are still in order
        del dropped[i : i + 2]
    assert "7 restart markers where 256 MCUs in intervals of 16 need 15" in (
        check_jpeg(bytes(dropped)).problem
    )
    # interval 6 loses the second half of its data: structure intact, grey fill to its end
    short = data[: (rst[5] + rst[6]) // 2] + data[rst[6] :]
    assert check_jpeg(short).problem is None
    tile = imagecodecs.jpeg8_decode(short)  # libjpeg: only a warning
    assert ends_in_fill(tile, good.grid) and not ends_in_fill(tile, None)
    assert not ends_in_fill(imagecodecs.jpeg8_decode(data), good.grid)
    with tifffile.TiffFile(path) as tif:  # the same in the file: openslide and the fast path
        offset, count = int(tif.pages[0].dataoffsets[5]), int(tif.pages[0].databytecounts[5])
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(short + bytes(count - len(short)))  # zeros after EOI keep the byte count
    x, y = _tile_xy(lv, 5)
    with open_slide(path) as s, pytest.raises(openslide.OpenSlideError, match="JPEG"):
        s.read_region((x, y), 0, (256, 256))
    with RawTileReader(path, dims) as raw, pytest.raises(TileReadError, match="grey fill"):
        raw.read_region(0, x, y, 256, 256)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d[2:], "no SOI marker"),
        (lambda d: d[:-2], "no marker ends the entropy-coded data"),
        (lambda d: d[:-200] + b"\xff\xc4" + d[-198:], "unexpected marker 0xc4|overruns"),
        (lambda d: d[:-2] + bytes(64) + d[-2:], "8 or more zero bytes at byte"),
        (lambda d: d[:2] + b"\xff\xe1\xff\xff" + d[2:], "marker 0xe1 at byte 2 overruns"),
        (lambda d: d[:2] + d[21:], "a scan without a frame header"),  # SOF removed
        (lambda d: d[:2] + b"\x00" + d[2:], "byte 2 is 0x00, not a marker"),
    ],
)
def test_check_jpeg_reports_damaged_structure(slides, edit, problem):
    with open_slide(slides.aperio20) as s, RawTileReader(slides.aperio20, s.level_dimensions) as r:
        lv = r.level(0)
        data = r._tile_bytes(0, lv, lv.n_cols + 2)
    assert check_jpeg(data).problem is None and restart_interval(lv.tables) == 0
    assert re.search(problem, check_jpeg(edit(data)).problem)
    with pytest.raises(ValueError, match="JPEGTables: no SOI"):
        restart_interval(b"\x00" + lv.tables)
