"""mmsurv.demo.synth: Aperio-layout pyramids read identically by openslide and tiffslide."""

from __future__ import annotations

import numpy as np
import openslide
import pytest
import tifffile
import tiffslide

from mmsurv.demo.synth import write_svs

READERS = [openslide.OpenSlide, tiffslide.TiffSlide]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A smooth RGB test image (JPEG-friendly) of 1280x1024."""
    yy, xx = np.mgrid[0:1024, 0:1280]
    rgb = np.stack([xx * 255 // 1279, yy * 255 // 1023, (xx + yy) * 255 // 2302], axis=-1)
    return rgb.astype(np.uint8)


@pytest.mark.parametrize("reader", READERS, ids=["openslide", "tiffslide"])
def test_pyramid_and_metadata(tmp_path, image, reader):
    path = tmp_path / "a.svs"
    write_svs(path, image, mpp=0.25, app_mag=40, downsamples=(1, 4, 16))
    with reader(str(path)) as s:
        # 1280/16 = 80 and 1024/16 = 64 are both below one 256 tile: that level is skipped
        assert s.level_count == 2
        assert s.level_dimensions == ((1280, 1024), (320, 256))
        assert s.level_downsamples == pytest.approx((1.0, 4.0))
        prefix = "openslide" if reader is openslide.OpenSlide else "tiffslide"
        assert float(s.properties[f"{prefix}.mpp-x"]) == pytest.approx(0.25)
        assert float(s.properties[f"{prefix}.objective-power"]) == pytest.approx(40)
        region = np.asarray(s.read_region((300, 200), 0, (256, 256)))[..., :3].astype(int)
        assert np.abs(region - image[200:456, 300:556]).mean() < 3
        low = np.asarray(s.read_region((0, 0), 1, (320, 256)))[..., :3].astype(int)
        assert np.abs(low - image[::4, ::4]).mean() < 4


def test_readers_agree_and_layout(tmp_path, image):
    path = tmp_path / "b.svs"
    write_svs(path, image, mpp=0.5, app_mag=20, downsamples=(1, 2, 4))
    with openslide.OpenSlide(str(path)) as a, tiffslide.TiffSlide(str(path)) as b:
        assert a.level_dimensions == b.level_dimensions
        assert a.level_count == 3
        for level in range(3):
            ra = np.asarray(a.read_region((64, 32), level, (200, 150)))[..., :3]
            rb = np.asarray(b.read_region((64, 32), level, (200, 150)))[..., :3]
            assert np.abs(ra.astype(int) - rb.astype(int)).max() <= 2
    with tifffile.TiffFile(path) as tif:
        pages = tif.pages
        assert pages[0].description.startswith("Aperio Image Library")
        assert "|AppMag = 20|" in pages[0].description and "|MPP = 0.5" in pages[0].description
        assert pages[0].is_tiled and not pages[1].is_tiled  # IFD1 = untiled thumbnail
        assert max(pages[1].shape[:2]) <= 512


def test_no_mpp_and_no_appmag(tmp_path, image):
    path = tmp_path / "c.svs"
    write_svs(path, image, mpp=None, app_mag=None)
    with tifffile.TiffFile(path) as tif:
        desc = tif.pages[0].description
    assert "MPP" not in desc and "AppMag" not in desc
    with openslide.OpenSlide(str(path)) as s:
        assert "openslide.mpp-x" not in s.properties
        assert "openslide.objective-power" not in s.properties
    with tiffslide.TiffSlide(str(path)) as s:
        assert s.properties.get("tiffslide.mpp-x") is None


def test_bad_input_and_atomicity(tmp_path, image):
    with pytest.raises(ValueError, match="bad.svs"):
        write_svs(tmp_path / "bad.svs", image[..., 0], mpp=0.5, app_mag=20)
    with pytest.raises(ValueError, match="mpp"):
        write_svs(tmp_path / "bad.svs", image, mpp=0.0, app_mag=20)
    assert list(tmp_path.iterdir()) == []
