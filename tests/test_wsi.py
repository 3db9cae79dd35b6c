"""Tests for mmsurv.tiling.wsi: reader factory, MPP resolution, segmentation and tiling."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from mmsurv.tiling import qc, wsi
from mmsurv.tiling.wsi import SegmentationParams, open_slide, segment_tissue, tile_slide


def test_open_slide_errors(tmp_path, synth_slides):
    with pytest.raises(ValueError, match="openslide, tiffslide"):
        open_slide(synth_slides.s20, reader="bioformats")
    with pytest.raises(FileNotFoundError, match="nope.svs"):
        open_slide(tmp_path / "nope.svs")
    bad = tmp_path / "garbage.svs"
    bad.write_text("not a slide")
    for reader in wsi.READERS:
        with pytest.raises(wsi.SlideError, match="garbage.svs"):
            open_slide(bad, reader=reader)


@pytest.mark.parametrize("reader", wsi.READERS)
def test_level0_mpp_sources(synth_slides, reader):
    with open_slide(synth_slides.s40, reader) as s:
        assert wsi.level0_mpp(s, synth_slides.s40) == (pytest.approx(0.25), "mpp")
    with open_slide(synth_slides.no_mpp, reader) as s:
        assert wsi.level0_mpp(s, synth_slides.no_mpp) == (pytest.approx(0.25), "objective-power")
    with open_slide(synth_slides.no_meta, reader) as s:
        assert wsi.level0_mpp(s, "x", fallback_mpp=0.5) == (0.5, "user-table")
        with pytest.raises(ValueError, match="no_meta.svs"):
            wsi.level0_mpp(s, synth_slides.no_meta)


def test_segmentation_matches_known_tissue(synth_slides):
    with open_slide(synth_slides.s40) as s:
        level = 2
        thumb = np.asarray(s.read_region((0, 0), level, s.level_dimensions[level]))[..., :3]
        scale = 0.25 * s.level_downsamples[level]
    tissue = segment_tissue(np.ascontiguousarray(thumb), SegmentationParams(), scale)
    known = cv2.resize(synth_slides.mask20, tissue.mask.shape[::-1], interpolation=cv2.INTER_AREA)
    known = known > 0
    got = tissue.mask > 0
    assert (got & known).sum() / (got | known).sum() > 0.8
    # lumens well above the a_h threshold are cut out of the mask
    params = SegmentationParams()
    min_hole_px = 1.6 * params.a_h * (params.ref_patch_um / 0.5) ** 2  # at 20x
    cont, hier = cv2.findContours(synth_slides.mask20, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    big = [
        c
        for c, h in zip(cont, hier[0], strict=True)
        if h[3] >= 0 and cv2.contourArea(c) > min_hole_px
    ]
    assert big and len(tissue.hole_contours[0]) >= len(big)
    for c in big:
        hole = np.zeros_like(synth_slides.mask20)
        cv2.drawContours(hole, [c], -1, 1, cv2.FILLED)
        hole = cv2.resize(hole, got.shape[::-1], interpolation=cv2.INTER_AREA)
        inner = cv2.erode(hole, np.ones((5, 5), np.uint8)) > 0  # away from the rim
        assert inner.sum() > 20 and got[inner].mean() < 0.05
    assert not got[0, :].any()  # background border


def test_segmentation_params_validation():
    with pytest.raises(ValueError, match="mthresh"):
        SegmentationParams(mthresh=4)
    with pytest.raises(ValueError, match="scale"):
        segment_tissue(np.zeros((8, 8, 3), np.uint8), SegmentationParams(), 0)


def test_tile_counts_agree_across_magnifications(synth_slides):
    r40 = tile_slide(synth_slides.s40)
    r20 = tile_slide(synth_slides.s20)
    n40, n20 = r40.attrs["n_tiles"], r20.attrs["n_tiles"]
    assert n20 > 10
    assert abs(n40 - n20) <= max(1, round(0.05 * n20))
    assert r40.attrs["read_level"] == 0 and r40.attrs["read_size"] == 512
    assert r40.attrs["patch_size_level0"] == 512
    assert r40.attrs["level0_magnification"] == pytest.approx(40)
    assert r20.attrs["read_level"] == 0 and r20.attrs["read_size"] == 256
    assert r20.attrs["mpp_source"] == "mpp"
    assert r40.coords.dtype == np.int64 and r40.coords.shape == (n40, 2)
    assert (r40.coords % 512 == 0).all()
    # the same physical tiles: 40x coords are twice the 20x coords
    same = {tuple(c) for c in r40.coords // 2} & {tuple(c) for c in r20.coords}
    assert len(same) >= 0.95 * max(n40, n20)
    # a 40x tile read at level 0 + resize looks like the 20x tile
    with open_slide(synth_slides.s40) as a, open_slide(synth_slides.s20) as b:
        ta = wsi.read_tile(a, r40.coords[0], r40.attrs)
        tb = wsi.read_tile(b, r40.coords[0] // 2, r20.attrs)
    assert ta.shape == tb.shape == (256, 256, 3) and ta.dtype == np.uint8
    assert np.abs(ta.astype(int) - tb.astype(int)).mean() < 8


def test_tiles_are_inside_tissue(synth_slides):
    r20 = tile_slide(synth_slides.s20)
    mask = synth_slides.mask20
    frac = {
        (x, y): mask[y : y + 256, x : x + 256].mean()
        for y in range(0, 1281, 256)
        for x in range(0, 1793, 256)
    }
    kept = {tuple(int(v) for v in c) for c in r20.coords}
    assert min(frac[c] for c in kept) > 0.3  # no background tiles
    assert np.mean([frac[c] >= 0.5 for c in kept]) > 0.9
    full = [c for c, f in frac.items() if f > 0.9]
    assert np.mean([c in kept for c in full]) > 0.95  # tissue tiles are not lost


def test_read_level_chosen_when_within_tolerance(tmp_path, synth_slides):
    # 40x slide with a downsample-2 level: 20x tiles are read there at 256
    from mmsurv.demo.synth import write_svs

    rgb = cv2.resize(synth_slides.rgb20, (4096, 3072))
    path = tmp_path / "ds2.svs"
    write_svs(path, rgb, mpp=0.25, app_mag=40, downsamples=(1, 2, 16))
    r = tile_slide(path)
    assert r.attrs["read_level"] == 1 and r.attrs["read_size"] == 256
    assert abs(r.attrs["n_tiles"] - tile_slide(synth_slides.s20).attrs["n_tiles"]) <= 2


def test_fallbacks_in_tile_slide(synth_slides):
    r = tile_slide(synth_slides.no_mpp)
    assert r.attrs["mpp_source"] == "objective-power" and r.attrs["read_size"] == 512
    r = tile_slide(synth_slides.no_meta, fallback_mpp=0.5)
    assert r.attrs["mpp_source"] == "user-table" and r.attrs["n_tiles"] > 10
    with pytest.raises(ValueError, match="no_meta.svs"):
        tile_slide(synth_slides.no_meta)


def test_readers_give_same_coords(synth_slides):
    a = tile_slide(synth_slides.s40, reader="openslide")
    b = tile_slide(synth_slides.s40, reader="tiffslide")
    np.testing.assert_array_equal(a.coords, b.coords)
    assert b.attrs["reader"] == "tiffslide"


def test_empty_slide_gives_zero_tiles(synth_slides, tmp_path):
    with pytest.warns(UserWarning, match="white.svs"):
        r = tile_slide(synth_slides.white)
    assert r.coords.shape == (0, 2) and r.attrs["n_tiles"] == 0
    wsi.write_coords_h5(tmp_path / "w.h5", r)
    coords, attrs = wsi.read_coords_h5(tmp_path / "w.h5")
    assert coords.shape == (0, 2) and attrs["n_tiles"] == 0


def test_coords_h5_roundtrip_and_qc(tmp_path, synth_slides):
    import h5py

    r = tile_slide(synth_slides.s40)
    out = tmp_path / "sub" / "s40.h5"
    wsi.write_coords_h5(out, r)
    coords, attrs = wsi.read_coords_h5(out)
    np.testing.assert_array_equal(coords, r.coords)
    for key in wsi.TILING_ATTRS:
        assert attrs[key] == r.attrs[key]
    with h5py.File(out) as f:
        assert f["coords"].dtype == np.int64
        assert f.attrs["patch_size_level0"] == 512 and f.attrs["reader"] == "openslide"
    assert [p.name for p in out.parent.iterdir()] == ["s40.h5"]  # no temp file left
    png = tmp_path / "qc.png"
    big = cv2.resize(r.thumb, (r.thumb.shape[1] * 2, r.thumb.shape[0] * 2))
    qc.save_qc_thumbnail(png, big, r)
    img = cv2.imread(str(png))[..., ::-1]
    assert img.shape == big.shape
    red = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] < 60)
    green = (img[..., 1] > 200) & (img[..., 0] < 60) & (img[..., 2] < 60)
    blue = (img[..., 2] > 200) & (img[..., 0] < 60) & (img[..., 1] < 60)
    assert red.any() and green.any() and blue.any()
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        wsi.read_coords_h5(tmp_path / "missing.h5")


def test_tiling_records_magnification_and_emptiness(synth_slides):
    r40 = tile_slide(synth_slides.s40)
    assert r40.attrs["effective_magnification"] == pytest.approx(20.0)
    assert r40.attrs["empty"] is False
    with pytest.raises(ValueError, match="empty_policy"):
        tile_slide(synth_slides.s20, empty_policy="ignore")
    with pytest.raises(ValueError, match="snap_to_tiles"):
        tile_slide(synth_slides.s20, snap_to_tiles=0.6)
    with pytest.warns(UserWarning, match=r"white.svs: no tissue tiles .*empty_policy=skip"):
        r = tile_slide(synth_slides.white)
    assert r.attrs["empty"] is True and r.attrs["n_tiles"] == 0


def test_cohort_qc_sheet_shows_every_slide_and_frames_empty_ones(tmp_path, synth_slides, caplog):
    """The report's per-cohort QC image: one cell per slide, slides without tiles framed red."""
    from mmsurv.tiling.stage import cohort_qc_sheet

    pngs, h5s, names = [], [], []
    for name in ("s20", "s40", "white"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the white slide's "no tissue" warning
            r = tile_slide(getattr(synth_slides, name))
        wsi.write_coords_h5(tmp_path / f"{name}.h5", r)
        qc.save_qc_thumbnail(tmp_path / f"{name}.png", r.thumb, r)
        pngs.append(tmp_path / f"{name}.png")
        h5s.append(tmp_path / f"{name}.h5")
        names.append(name)
    out = tmp_path / "figures" / "qc_X.jpg"
    out.parent.mkdir()
    with caplog.at_level("WARNING"):
        assert cohort_qc_sheet(pngs, h5s, names, out) == 1
    assert "['white']" in caplog.text
    sheet = cv2.imread(str(out))[..., ::-1]
    cell_h, cell_w = 192 + 18 + 8, 192 + 8  # cell + label + padding, 2 x 2 grid for 3 slides
    assert sheet.shape[:2] == (2 * cell_h, 2 * cell_w)
    framed = (sheet[..., 0] > 180) & (sheet[..., 1] < 80) & (sheet[..., 2] < 80)
    # the third cell (white slide, no tiles) has the red frame; its top edge is fully red
    row = framed[cell_h + 2, 4 : 4 + 192]
    assert row.mean() > 0.9 and not framed[2, 4 : 4 + 192].all()
    with pytest.raises(FileNotFoundError, match=r"nope\.png \(slide x\)"):
        qc.qc_contact_sheet([tmp_path / "nope.png"], ["x"], tmp_path / "y.jpg")
