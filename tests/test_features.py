"""Tests for mmsurv.features: encoder registry, weights loading and per-slide extraction."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import openslide
import pytest
import torch
from torch import nn

from mmsurv.demo import synth
from mmsurv.features import device, encoders, extract, loader, resume
from mmsurv.features.tileread import RawTileReader
from mmsurv.io import py_value
from mmsurv.tiling import wsi
from mmsurv.tiling.wsi import SegmentationParams, tile_slide

torch.set_num_threads(1)
SEG = SegmentationParams(a_t=1.0, a_h=1.0)  # the tiny slide is smaller than CLAM's a_t


class TinyEncoder(encoders.Encoder):
    """A 16-d conv encoder: cheap enough to test the loader on every tile of a slide."""

    name = "tiny"
    dim = 16

    def _build(self) -> nn.Module:
        """One strided conv, ReLU and average pooling."""
        return nn.Sequential(
            nn.Conv2d(3, 16, 8, stride=8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, 16)."""
        return self.net(x)


@pytest.fixture(scope="module")
def tiny_coords(synth_slides, tmp_path_factory):
    """Coords h5 of the tiny slide (a handful of 20x tiles)."""
    r = tile_slide(synth_slides.tiny, seg=SEG)
    assert 3 <= r.attrs["n_tiles"] <= 6
    path = tmp_path_factory.mktemp("coords") / "tiny.h5"
    wsi.write_coords_h5(path, r)
    return path


@pytest.mark.parametrize("name", encoders.list_encoders())
def test_registered_encoders_forward(name):
    enc = encoders.create_encoder(name)
    assert enc.weights_id == "random-init" and enc.input_size == 224
    with torch.inference_mode():
        out = enc(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, enc.dim) and torch.isfinite(out).all()


def test_registry_errors_and_dims(caplog):
    with pytest.raises(ValueError, match="resnet50_trunc"):
        encoders.create_encoder("uni2")
    with caplog.at_level("WARNING", logger="mmsurv.features.encoders"):
        enc = encoders.create_encoder("resnet50_trunc")
    assert "RANDOMLY INITIALISED" in caplog.text
    assert enc.dim == 1024 and encoders.create_encoder("resnet50").dim == 2048
    # random init is reproducible, so features of different jobs are comparable
    again = encoders.create_encoder("resnet50_trunc")
    for a, b in zip(enc.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_weights_loading(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth. Download"):
        encoders.create_encoder("resnet50_trunc", weights=str(tmp_path / "missing.pth"))
    src = encoders.create_encoder("resnet50")
    torch.manual_seed(3)
    for p in src.net.parameters():
        p.data.normal_(0, 0.02)
    state = src.net.state_dict()
    state["fc.weight"] = torch.zeros(1000, 2048)  # a torchvision file has a classifier
    torch.save({"state_dict": state}, tmp_path / "w.pth")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    x = torch.randn(1, 3, 64, 64)
    for fname in ("w.pth", "w.safetensors"):
        full = encoders.create_encoder("resnet50", weights=str(tmp_path / fname))
        trunc = encoders.create_encoder("resnet50_trunc", weights=str(tmp_path / fname))
        assert full.weights_id.startswith(str(tmp_path / fname) + " sha256:")
        assert len(full.weights_id.split("sha256:")[1]) == 16
        with torch.inference_mode():
            torch.testing.assert_close(full(x), src(x))
            assert trunc(x).shape == (1, 1024)
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="partial.pth"):
        encoders.create_encoder("resnet50_trunc", weights=str(tmp_path / "partial.pth"))


def test_extract_outputs(synth_slides, tiny_coords, tmp_path):
    out = tmp_path / "f" / "tiny.h5"
    n = extract.extract_slide_features(synth_slides.tiny, tiny_coords, out, batch_size=2)
    coords, attrs = wsi.read_coords_h5(tiny_coords)
    assert n == len(coords)
    with h5py.File(out) as f:
        feats = f["features"][()]
        assert feats.shape == (n, 1024) and feats.dtype == np.float32
        np.testing.assert_array_equal(f["coords"][()], coords)
        assert f.attrs["encoder"] == "resnet50_trunc"
        assert f.attrs["weights"] == "random-init"
        assert f.attrs["feature_dim"] == 1024
        assert f.attrs["target_magnification"] == 20.0 and f.attrs["patch_size"] == 256
    assert np.isfinite(feats).all() and feats.std(axis=0).mean() > 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.h5"]
    # same order as the coords file: a reversed coords file gives reversed features
    rev = wsi.TilingResult(coords[::-1].copy(), dict(attrs), None, None, (1.0, 1.0), 0)
    wsi.write_coords_h5(tmp_path / "rev.h5", rev)
    extract.extract_slide_features(
        synth_slides.tiny, tmp_path / "rev.h5", tmp_path / "rev_f.h5", batch_size=3
    )
    with h5py.File(tmp_path / "rev_f.h5") as f:
        np.testing.assert_allclose(f["features"][()], feats[::-1], rtol=1e-4, atol=1e-5)
    # a prebuilt encoder (one load for a batch of slides) gives the same features
    enc = encoders.create_encoder("resnet50_trunc")
    extract.extract_slide_features(synth_slides.tiny, tiny_coords, tmp_path / "e.h5", encoder=enc)
    with h5py.File(tmp_path / "e.h5") as f:
        np.testing.assert_allclose(f["features"][()], feats, rtol=1e-4, atol=1e-5)
        assert f.attrs["encoder"] == "resnet50_trunc"
    with pytest.raises(ValueError, match="create_encoder"):
        extract.extract_slide_features(
            synth_slides.tiny, tiny_coords, tmp_path / "x.h5", encoder=enc, weights="w.pth"
        )
    # tiffslide reads the same pixels: nearly identical features
    extract.extract_slide_features(
        synth_slides.tiny,
        tiny_coords,
        tmp_path / "ts.h5",
        reader="tiffslide",
        batch_size=4,
        num_workers=2,
    )
    with h5py.File(tmp_path / "ts.h5") as f:
        np.testing.assert_allclose(f["features"][()], feats, rtol=0.05, atol=0.02)


def test_interrupted_extraction_leaves_nothing(synth_slides, tiny_coords, tmp_path, monkeypatch):
    enc = TinyEncoder()
    calls = {"n": 0}
    real = enc._embed

    def killed(x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the job is killed while encoding the second batch
        return real(x)

    monkeypatch.setattr(enc, "_embed", killed)
    out = tmp_path / "killed" / "tiny.h5"
    out.parent.mkdir()
    with pytest.raises(KeyboardInterrupt):
        extract.extract_slide_features(
            synth_slides.tiny, tiny_coords, out, encoder=enc, batch_size=2
        )
    assert calls["n"] == 2 and not out.exists() and list(out.parent.iterdir()) == []


def test_empty_coords(synth_slides, tmp_path):
    with pytest.warns(UserWarning):
        r = tile_slide(synth_slides.white)
    wsi.write_coords_h5(tmp_path / "white.h5", r)
    n = extract.extract_slide_features(synth_slides.white, tmp_path / "white.h5", tmp_path / "o.h5")
    assert n == 0
    with h5py.File(tmp_path / "o.h5") as f:
        assert f["features"].shape == (0, 1024) and f["coords"].shape == (0, 2)


def test_missing_inputs(synth_slides, tiny_coords, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.svs"):
        extract.extract_slide_features(tmp_path / "nope.svs", tiny_coords, tmp_path / "o.h5")
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        extract.extract_slide_features(synth_slides.tiny, tmp_path / "nope.h5", tmp_path / "o.h5")


@pytest.fixture(scope="module")
def aperio(synth_slides, tmp_path_factory):
    """The 20x field with Aperio-style JPEG tiles, its coords h5 and one of its first 4 tiles."""
    d = tmp_path_factory.mktemp("aperio")
    slide = d / "s20_aperio.svs"
    synth.write_svs(
        slide, synth_slides.rgb20, mpp=0.5, app_mag=20, downsamples=(1, 4), jpeg_style="aperio"
    )
    result = tile_slide(slide)
    coords = d / "s20_aperio.h5"
    wsi.write_coords_h5(coords, result)
    four = wsi.TilingResult(result.coords[:4].copy(), dict(result.attrs), None, None, (1, 1), 0)
    wsi.write_coords_h5(d / "four.h5", four)
    return slide, coords, d / "four.h5"


def _read(path):
    """features, coords and attrs of a feature h5."""
    with h5py.File(path) as f:
        attrs = {k: py_value(v) for k, v in f.attrs.items()}
        return f["features"][()], f["coords"][()], attrs, f["bad_tiles"][()]


def test_fast_and_general_paths_agree(aperio, tmp_path):
    slide, _, coords = aperio
    enc = encoders.create_encoder("resnet50_trunc")
    n = extract.extract_slide_features(slide, coords, tmp_path / "fast.h5", encoder=enc)
    extract.extract_slide_features(
        slide, coords, tmp_path / "slow.h5", encoder=enc, fast_tiles="never"
    )
    fast, c1, a1, _ = _read(tmp_path / "fast.h5")
    slow, c2, a2, _ = _read(tmp_path / "slow.h5")
    assert n == 4 and a1["n_fast_tiles"] == n and a2["n_fast_tiles"] == 0
    np.testing.assert_array_equal(c1, c2)
    # identical pixels (tests/test_tileread.py), so features agree to float rounding
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)
    assert a1["reader"] == "openslide" and a1["precision"] == "fp32" and a1["n_bad_tiles"] == 0


@pytest.mark.parametrize("num_workers", [0, 2])
def test_one_loader_over_several_slides(synth_slides, tiny_coords, aperio, tmp_path, num_workers):
    slide_a, coords_a, _ = aperio
    s20_coords = tmp_path / "s20.h5"
    wsi.write_coords_h5(s20_coords, tile_slide(synth_slides.s20))
    with pytest.warns(UserWarning, match="white.svs"):
        white = tile_slide(synth_slides.white)
    wsi.write_coords_h5(tmp_path / "white.h5", white)
    enc = TinyEncoder()
    slides = [synth_slides.tiny, synth_slides.white, slide_a, synth_slides.s20]
    coords = [tiny_coords, tmp_path / "white.h5", coords_a, s20_coords]
    outs = [tmp_path / "batch" / f"{i}.h5" for i in range(4)]
    counts = extract.extract_features(
        slides, coords, outs, encoder=enc, batch_size=5, num_workers=num_workers
    )
    assert counts[1] == 0 and all(c > 2 for i, c in enumerate(counts) if i != 1)
    assert sorted(p.name for p in outs[0].parent.iterdir()) == ["0.h5", "1.h5", "2.h5", "3.h5"]
    for i in (0, 2, 3):  # the same features as one slide at a time, in coords order
        single = tmp_path / f"single{i}.h5"
        extract.extract_slide_features(slides[i], coords[i], single, encoder=enc, batch_size=3)
        got, got_coords, attrs, _ = _read(outs[i])
        want, _, _, _ = _read(single)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got_coords, wsi.read_coords_h5(coords[i])[0])
        assert attrs["n_fast_tiles"] == counts[i]  # JPEG tiles on the patch grid: all fast
    empty, empty_coords, attrs, _ = _read(outs[1])
    assert empty.shape == (0, 16) and empty_coords.shape == (0, 2) and attrs["encoder"] == "tiny"


def _zero_tile_features(enc):
    """What the encoder makes of an all-zero tile (the stand-in for an unreadable one)."""
    mean = torch.tensor(enc.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(enc.std).view(1, 3, 1, 1) * 255
    with torch.inference_mode():
        return enc((torch.zeros(1, 3, 224, 224) - mean) / std).numpy()[0]


def _damage(path, tiles, damage):
    """Damage stored tiles of a slide: random bytes, partly zeroed or cut-short JPEG data."""
    if damage == "random":
        synth.corrupt_tiles(path, tiles)
    else:
        synth.damage_jpeg_tiles(path, tiles, how="zero" if damage == "zeroed" else "cut")


@pytest.mark.parametrize(
    ("damage", "fast_tiles", "decode_on_device"),
    [
        ("random", "aligned", False),
        ("random", "never", False),
        ("random", "aligned", True),
        # libjpeg decodes these with a mere warning; openslide refuses them
        ("zeroed", "aligned", False),
        ("zeroed", "aligned", True),
        ("cut", "aligned", False),
        ("cut", "aligned", True),
    ],
)
def test_corrupt_tile_is_counted_and_replaced(
    aperio, tmp_path, damage, fast_tiles, decode_on_device
):
    slide, coords_h5, _ = aperio
    coords, _ = wsi.read_coords_h5(coords_h5)
    bad = tmp_path / "corrupt.svs"
    bad.write_bytes(slide.read_bytes())
    with wsi.open_slide(slide) as s:
        n_cols = -(-s.dimensions[0] // 256)
    x, y = coords[1] // 256
    _damage(bad, [int(y * n_cols + x)], damage)  # the stored tile under patch 1
    enc = TinyEncoder()
    extract.extract_slide_features(slide, coords_h5, tmp_path / "clean.h5", encoder=enc)
    with pytest.warns(UserWarning, match=r"corrupt.svs: 1 of \d+ tiles unreadable"):
        extract.extract_slide_features(
            bad,
            coords_h5,
            tmp_path / "bad.h5",
            encoder=enc,
            fast_tiles=fast_tiles,
            max_bad_tile_fraction=0.5,
            batch_size=2,
            decode_on_device=decode_on_device,
        )
    clean, _, _, _ = _read(tmp_path / "clean.h5")
    got, _, attrs, bad_tiles = _read(tmp_path / "bad.h5")
    assert attrs["n_bad_tiles"] == 1 and bad_tiles.tolist() == [1]
    assert attrs["n_fast_tiles"] == (0 if fast_tiles == "never" else len(got) - 1)
    np.testing.assert_allclose(got[1], _zero_tile_features(enc), rtol=1e-5, atol=1e-6)
    # the other tiles are unharmed: openslide's handle is reopened after its error
    keep = np.arange(len(got)) != 1
    np.testing.assert_allclose(got[keep], clean[keep], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("decode_on_device", [False, True])
def test_partly_zeroed_tiles_are_all_counted_bad(aperio, tmp_path, decode_on_device):
    """Tiles with partly zeroed entropy-coded data: every one that openslide refuses is counted
    bad, none is encoded from the raw-tile fast path, and the others keep their features."""
    slide, coords_h5, _ = aperio
    coords, _ = wsi.read_coords_h5(coords_h5)
    with wsi.open_slide(slide) as s:
        n_cols = -(-s.dimensions[0] // 256)
    hit = list(range(0, len(coords), 3))
    tiles = [int(y * n_cols + x) for x, y in coords[hit] // 256]
    zeroed = tmp_path / "zeroed.svs"
    zeroed.write_bytes(slide.read_bytes())
    synth.damage_jpeg_tiles(zeroed, tiles, how="zero")
    for j in hit:  # openslide's verdict: every damaged tile is unreadable
        with wsi.open_slide(zeroed) as s, pytest.raises(openslide.OpenSlideError, match="JPEG"):
            wsi.read_patch_region(s, coords[j], wsi.read_coords_h5(coords_h5)[1])
    enc = TinyEncoder()
    kw = {"encoder": enc, "batch_size": 4, "decode_on_device": decode_on_device}
    extract.extract_slide_features(slide, coords_h5, tmp_path / "clean.h5", **kw)
    with pytest.warns(UserWarning, match=rf"zeroed.svs: {len(hit)} of {len(coords)} tiles") as rec:
        extract.extract_slide_features(
            zeroed, coords_h5, tmp_path / "zeroed.h5", max_bad_tile_fraction=1.0, **kw
        )
    x0, y0 = (int(v) for v in coords[0])
    msg = next(str(w.message) for w in rec if "zeroed.svs" in str(w.message))
    assert f"first: tile 0 at ({x0}, {y0}): " in msg and "np.int64" not in msg
    clean, _, _, _ = _read(tmp_path / "clean.h5")
    got, _, attrs, bad_tiles = _read(tmp_path / "zeroed.h5")
    assert bad_tiles.tolist() == hit and attrs["n_bad_tiles"] == len(hit)
    assert attrs["n_fast_tiles"] == len(coords) - len(hit)
    np.testing.assert_allclose(
        got[hit], np.tile(_zero_tile_features(enc), (len(hit), 1)), atol=1e-6
    )
    keep = np.setdiff1d(np.arange(len(coords)), hit)
    np.testing.assert_allclose(got[keep], clean[keep], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("decode_on_device", [False, True])
def test_a_tile_the_fast_path_doubts_is_read_by_openslide(
    synth_slides, aperio, tmp_path, decode_on_device
):
    """A good tile that looks like libjpeg's grey fill (an exactly grey-128 last block) is read
    with openslide, which accepts it: not bad, same features, just not from the fast path."""
    _, _, four = aperio
    coords, _ = wsi.read_coords_h5(four)
    rgb = synth_slides.rgb20.copy()
    x, y = (int(v) for v in coords[1])
    rgb[y + 248 : y + 256, x + 248 : x + 256] = 128
    slide = tmp_path / "grey.svs"
    synth.write_svs(slide, rgb, mpp=0.5, app_mag=20, downsamples=(1, 4), jpeg_style="aperio")
    enc = TinyEncoder()
    kw = {"encoder": enc, "decode_on_device": decode_on_device}
    extract.extract_slide_features(slide, four, tmp_path / "fast.h5", **kw)
    extract.extract_slide_features(
        slide, four, tmp_path / "slow.h5", encoder=enc, fast_tiles="never"
    )
    fast, _, attrs, bad = _read(tmp_path / "fast.h5")
    slow, _, _, _ = _read(tmp_path / "slow.h5")
    assert attrs["n_bad_tiles"] == 0 and len(bad) == 0 and attrs["n_fast_tiles"] == 3
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_decode_on_device_gives_the_loader_decoded_features(aperio, tmp_path, num_workers):
    """Undecoded JPEG tiles decoded in batches after the loader = the loader's own decoding."""
    slide, coords_h5, _ = aperio
    enc = TinyEncoder()
    kw = {"encoder": enc, "batch_size": 8, "num_workers": num_workers}
    extract.extract_slide_features(slide, coords_h5, tmp_path / "loader.h5", **kw)
    extract.extract_slide_features(
        slide, coords_h5, tmp_path / "device.h5", decode_on_device=True, **kw
    )
    want, _, attrs0, _ = _read(tmp_path / "loader.h5")
    got, coords, attrs, bad = _read(tmp_path / "device.h5")
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert attrs["jpeg_decode"] == "torchvision-libjpeg" and "jpeg_decode" not in attrs0
    assert attrs["n_fast_tiles"] == len(coords) and len(bad) == 0
    batches = loader.TileBatches(
        [loader.SlideJob(str(slide), *wsi.read_coords_h5(coords_h5), tmp_path / "y.h5")],
        batch_size=8,
        input_size=None,
        raw_jpeg=True,
    )
    item = batches[0]  # every tile leaves the loader undecoded, as a complete JPEG file
    assert item["jpeg_rows"].tolist() == list(range(8)) and (item["tiles"] == 0).all()
    streams = device.jpeg_streams(item)
    assert len(streams) == 8 and all(bytes(t[:2].tolist()) == b"\xff\xd8" for t in streams)
    batches.close()
    with pytest.raises(ValueError, match="decode_on_device needs resize_on_device"):
        extract.extract_slide_features(
            slide, coords_h5, tmp_path / "x.h5", decode_on_device=True, resize_on_device=False
        )


def test_device_jpeg_falls_back_when_the_device_decodes_differently(aperio, monkeypatch, caplog):
    """A device decoder whose pixels differ from libjpeg's is not trusted: the CPU decodes."""
    import torchvision.io

    slide, _, _ = aperio
    with wsi.open_slide(slide) as s, RawTileReader(slide, s.level_dimensions) as raw:
        stream = torch.frombuffer(bytearray(raw.jpeg(0, 256, 0, 256, 256)), dtype=torch.uint8)
    real = torchvision.io.decode_jpeg
    calls = []

    def device_decoder(data, mode=None, device="cpu"):
        calls.append(str(device))
        img = real(data, mode=mode)
        return 255 - img if str(device) == "meta" else img  # a decoder that gets colours wrong

    monkeypatch.setattr(torchvision.io, "decode_jpeg", device_decoder)
    dec = device._DeviceJpeg(torch.device("cpu"))  # decoded tiles go to the CPU
    dec.where, dec.checked = torch.device("meta"), False  # "meta" stands in for a GPU decoder
    tiles = torch.zeros(2, 256, 256, 3, dtype=torch.uint8)
    with caplog.at_level("WARNING", logger="mmsurv.features.device"):
        failed = dec.into(tiles, torch.tensor([1]), [stream])
    assert "differs from libjpeg" in caplog.text and dec.where.type == "cpu"
    assert failed == [] and calls[:2] == ["meta", "cpu"]
    assert (tiles[0] == 0).all() and torch.equal(tiles[1], real(stream).permute(1, 2, 0))


def test_slide_failures_name_the_slide_and_spare_the_others(aperio, tmp_path):
    slide, coords_h5, _ = aperio
    coords, _ = wsi.read_coords_h5(coords_h5)
    bad = tmp_path / "corrupt.svs"
    bad.write_bytes(slide.read_bytes())
    with wsi.open_slide(slide) as s:
        n_cols = -(-s.dimensions[0] // 256)
    synth.corrupt_tiles(bad, [int(y * n_cols + x) for x, y in coords // 256])  # every tile
    cut = tmp_path / "cut.svs"
    cut.write_bytes(slide.read_bytes())
    synth.truncate_file(cut, 0.5)
    outs = [tmp_path / "out" / f"{k}.h5" for k in ("good", "corrupt", "cut")]
    with pytest.raises(wsi.SlideError) as info:
        extract.extract_features(
            [slide, bad, cut], [coords_h5] * 3, outs, encoder=TinyEncoder(), batch_size=4
        )
    msg = str(info.value)
    assert "2 of 3 slide(s) failed" in msg
    assert re.search(r"corrupt.svs: \d+ of \d+ tiles unreadable \(100.0% > ", msg)
    assert "max_bad_tile_fraction=0.05" in msg
    assert re.search(r"cut.svs: slide file .*cut.svs is truncated", msg)
    assert "a rerun of this batch reuses them" in msg
    written = sorted(p.name for p in outs[0].parent.iterdir())
    assert written == [".resume", "good.h5"]  # written (and kept for a rerun), the rest not


def test_rerun_of_a_failed_batch_encodes_only_the_unfinished_slides(aperio, tmp_path, caplog):
    """Snakemake deletes a failed job's outputs; the kept copies spare a rerun the finished work."""
    slide, coords_h5, four = aperio
    slides = [tmp_path / f"{k}.svs" for k in ("a", "b", "c")]
    for s in slides:
        s.write_bytes(slide.read_bytes())
    synth.truncate_file(slides[1], 0.5)
    outs = [tmp_path / "features" / f"{s.stem}.h5" for s in slides]
    enc = TinyEncoder()
    seen = {"tiles": 0}
    real = enc._embed

    def counting(x):
        seen["tiles"] += len(x)
        return real(x)

    enc._embed = counting
    with pytest.raises(wsi.SlideError, match="1 of 3 slide"):
        extract.extract_features(slides, [four] * 3, outs, encoder=enc, batch_size=4)
    assert seen["tiles"] == 8  # a and c
    first = {o.name: _read(o)[0] for o in (outs[0], outs[2])}
    for o in outs:  # what Snakemake does to a failed job's outputs
        o.unlink(missing_ok=True)
    slides[1].write_bytes(slide.read_bytes())  # the user fixes the slide
    seen["tiles"] = 0
    with caplog.at_level("INFO", logger="mmsurv.features.resume"):
        counts = extract.extract_features(slides, [four] * 3, outs, encoder=enc, batch_size=4)
    assert counts == [4, 4, 4] and seen["tiles"] == 4  # only b encoded
    assert sum("reused" in r.message for r in caplog.records) == 2
    for o in (outs[0], outs[2]):
        np.testing.assert_array_equal(_read(o)[0], first[o.name])
    assert _read(outs[1])[0].shape == (4, 16)
    assert sorted(p.name for p in outs[0].parent.iterdir()) == ["a.h5", "b.h5", "c.h5"]

    # a kept output no longer matching its inputs (slide re-written) is encoded again
    extract.extract_features(slides[:1], [four], outs[:1], encoder=enc, batch_size=4, resume=False)
    kept = resume.resume_path(outs[0])
    resume._place(outs[0], kept)
    outs[0].unlink()
    st = slides[0].stat()  # the slide is replaced: a new modification time
    os.utime(slides[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    seen["tiles"] = 0
    with caplog.at_level("WARNING", logger="mmsurv.features.resume"):
        extract.extract_features(slides[:1], [four], outs[:1], encoder=enc, batch_size=4)
    assert seen["tiles"] == 4 and "not reusing" in caplog.text and "slide_mtime_ns" in caplog.text
    assert not kept.exists()


def test_batch_directory_keeps_finished_slides_outside_it(aperio, tmp_path):
    """Rule extract_features: outputs in features/.batches/<b>, kept slides in features/.resume."""
    from mmsurv.features import extract_features_batch

    slide, _, four = aperio
    slides = [tmp_path / f"{k}.svs" for k in ("a", "b")]
    for s in slides:
        s.write_bytes(slide.read_bytes())
    synth.truncate_file(slides[1], 0.5)
    batch = tmp_path / "features" / ".batches" / "0"
    kept = tmp_path / "features" / ".resume"
    outs = [batch / f"{s.stem}.h5" for s in slides]
    enc = TinyEncoder()
    seen = {"tiles": 0}
    real = enc._embed

    def counting(x):
        seen["tiles"] += len(x)
        return real(x)

    enc._embed = counting
    cfg = {"encoder": enc, "weights": None, "batch_size": 4, "num_workers": 0, "device": "cpu"}
    kwargs = {"features": cfg, "reader": "openslide", "resume_dir": kept}
    with pytest.raises(wsi.SlideError, match="1 of 2 slide") as info:
        extract_features_batch(slides, [four] * 2, outs, **kwargs)
    assert f"kept under {kept};" in str(info.value)  # not the batch directory's link
    shutil.rmtree(batch)  # what Snakemake does to a failed job's directory() output
    assert [p.name for p in kept.iterdir()] == ["a.h5"]
    slides[1].write_bytes(slide.read_bytes())  # the user fixes the slide
    seen["tiles"] = 0
    assert extract_features_batch(slides, [four] * 2, outs, **kwargs) == [4, 4]
    assert seen["tiles"] == 4  # only b encoded, a reused
    assert sorted(p.name for p in batch.iterdir()) == ["a.h5", "b.h5"]  # no .resume link left
    assert kept.is_dir() and not any(kept.iterdir())  # nothing kept once the batch succeeded
    assert _read(outs[0])[0].shape == _read(outs[1])[0].shape == (4, 16)


def test_concurrent_batches_share_the_resume_directory(aperio, tmp_path, monkeypatch):
    """Two batches of a cohort at once: one finishing first leaves the other's link usable."""
    from mmsurv.features import extract_features_batch

    slide, _, four = aperio
    kept = tmp_path / "features" / ".resume"
    cfg = {"encoder": TinyEncoder(), "weights": None, "batch_size": 4, "num_workers": 0}
    kwargs = {"features": {**cfg, "device": "cpu"}, "reader": "openslide", "resume_dir": kept}
    first = tmp_path / "features" / ".batches" / "0" / "a.h5"
    second = tmp_path / "features" / ".batches" / "1" / "b.h5"
    real = extract._write_features

    def first_finishes_meanwhile(job, *args, **kw):
        if Path(job.out) == second:  # batch 0 runs from start to end while batch 1 is encoding
            extract_features_batch([slide], [four], [first], **kwargs)
        return real(job, *args, **kw)

    monkeypatch.setattr(extract, "_write_features", first_finishes_meanwhile)
    assert extract_features_batch([slide], [four], [second], **kwargs) == [4]
    assert first.is_file() and second.is_file()


def test_empty_policy(synth_slides, tmp_path):
    with pytest.raises(wsi.EmptySlideError, match=r"white.svs: no tissue tiles .*=error"):
        tile_slide(synth_slides.white, empty_policy="error")
    from mmsurv.tiling.stage import tile_and_save

    tiling = {
        "reader": "openslide",
        "patch_size": 256,
        "target_magnification": 20,
        "mag_tolerance": 0.1,
        "min_tissue_fraction": 0.5,
        "empty_policy": "skip",
    }
    with pytest.warns(UserWarning, match="white.svs: no tissue tiles"):
        n = tile_and_save(
            synth_slides.white,
            coords_h5=tmp_path / "w.h5",
            qc_png=tmp_path / "w.png",
            tiling=tiling,
        )
    coords, attrs = wsi.read_coords_h5(tmp_path / "w.h5")
    assert n == 0 and coords.shape == (0, 2) and attrs["empty"] is True
    assert (tmp_path / "w.png").is_file()
    with pytest.raises(wsi.EmptySlideError, match="white.svs"):
        tile_and_save(
            synth_slides.white,
            coords_h5=tmp_path / "e.h5",
            qc_png=tmp_path / "e.png",
            tiling={**tiling, "empty_policy": "error"},
        )
    assert not (tmp_path / "e.h5").exists()


def test_zero_patch_slides_in_case_bags(synth_slides, tiny_coords, tmp_path):
    # what the bag stage (mmsurv.bags.stage.build_case_bags) makes of a 0-patch slide
    from mmsurv.bags.data import BagStore
    from mmsurv.bags.stage import build_case_bags

    with pytest.warns(UserWarning):
        wsi.write_coords_h5(tmp_path / "white.h5", tile_slide(synth_slides.white))
    enc = TinyEncoder()
    tiny_out, white_out = tmp_path / "f" / "tiny.h5", tmp_path / "f" / "white.h5"
    n = extract.extract_slide_features(synth_slides.tiny, tiny_coords, tiny_out, encoder=enc)
    extract.extract_slide_features(
        synth_slides.white, tmp_path / "white.h5", white_out, encoder=enc
    )
    table = [("case-a", "tiny"), ("case-a", "white"), ("case-b", "white")]
    with pytest.warns(UserWarning, match="case-b: no patches"):
        build_case_bags([tiny_out, white_out], table, tmp_path / "bags.h5")
    with BagStore(tmp_path / "bags.h5") as store:
        assert store.n_patches("case-a") == n  # the empty slide adds nothing
        assert store.n_patches("case-b") == 0 and store["case-b"].shape == (0, 16)


def test_precision_resolution(caplog):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert device._autocast_dtype("auto", cpu) is None
    with caplog.at_level("WARNING", logger="mmsurv.features.device"):
        assert device._autocast_dtype("bf16", cpu) is None
    assert "CUDA only" in caplog.text
    assert device._autocast_dtype("fp16", cuda) is torch.float16
    assert device._autocast_dtype("bf16", cuda) is torch.bfloat16
    assert device._autocast_dtype("fp32", cuda) is None
    with pytest.raises(ValueError, match="fp32"):
        device._autocast_dtype("int8", cpu)


def test_resize_on_device_matches_loader_resize(aperio, tmp_path):
    # By default the loader delivers 256 px patches and the device resizes them to 224
    # (antialiased bilinear, uint8 on the CPU); resize_on_device=False resizes in the loader
    # with cv2 INTER_AREA. Both are area-like filters.
    slide, coords, _ = aperio
    enc = TinyEncoder()
    outs = {}
    for on_device in (False, True):
        out = tmp_path / f"{on_device}.h5"
        extract.extract_slide_features(
            slide, coords, out, encoder=enc, resize_on_device=on_device, batch_size=8
        )
        outs[on_device] = _read(out)
    (a, _, attrs_a, _), (b, _, attrs_b, _) = outs[False], outs[True]
    assert attrs_a["input_resize"] == "cv2-area"
    assert attrs_b["input_resize"] == "torch-bilinear-antialias-uint8"
    assert not np.array_equal(a, b)  # really two code paths
    scale = np.abs(a).mean()
    assert np.abs(a - b).max() < 0.02 * scale
    dataset = loader.TileBatches(
        [loader.SlideJob(str(slide), *wsi.read_coords_h5(coords), tmp_path / "x.h5")],
        batch_size=4,
        input_size=None,
    )
    assert (
        dataset[0]["tiles"].shape == (4, 256, 256, 3) and dataset[0]["tiles"].dtype == torch.uint8
    )
    dataset.close()


def test_cpu_uint8_resize_is_the_float_filter_rounded():
    """prepare_batch's CPU resize (uint8, fixed point) = the GPU path's float filter ±1 level."""
    rng = np.random.default_rng(3)
    tiles = torch.from_numpy(rng.integers(0, 256, (3, 256, 256, 3), dtype=np.uint8))
    scale, shift = torch.ones(3), torch.zeros(3)  # identity normalisation: compare grey levels
    fast = device.prepare_batch(tiles, 224, scale, shift)
    ref = torch.nn.functional.interpolate(
        tiles.permute(0, 3, 1, 2).float(), size=(224, 224), mode="bilinear", antialias=True
    )
    assert fast.shape == (3, 3, 224, 224) and fast.is_contiguous(memory_format=torch.channels_last)
    diff = (fast - ref).abs()
    assert diff.max() <= 1.5 and diff.mean() < 0.5
    assert device.input_resize_label(True, torch.device("cpu")).endswith("-uint8")
    assert device.input_resize_label(True, torch.device("cuda")) == "torch-bilinear-antialias"
    assert device.input_resize_label(False, torch.device("cpu")) == "cv2-area"


def test_prepare_batch_normalises_each_channel_like_torchvision():
    """Tiles at the encoder's size: (x / 255 - mean) / std per channel, as torchvision does."""
    from torchvision.transforms.functional import normalize

    rng = np.random.default_rng(4)
    tiles = torch.from_numpy(rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8))
    enc = encoders.create_encoder("resnet50_trunc")
    scale, shift = device.normalisation(enc, torch.device("cpu"))
    got = device.prepare_batch(tiles, 224, scale, shift)
    ref = normalize(tiles.permute(0, 3, 1, 2).float() / 255, enc.mean, enc.std)
    assert got.shape == (2, 3, 224, 224) and got.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got, ref, atol=1e-5)
    assert not torch.allclose(got[:, 0], ref[:, 1], atol=1e-2)  # channels not mixed up


def test_any_timm_model_by_name(tmp_path, synth_slides, tiny_coords):
    """encoder "timm:<model>": timm's architecture, the user's weights, features of its width."""
    enc = encoders.create_encoder("timm:resnet18")
    assert enc.dim == 512 and enc.weights_id == encoders.RANDOM_INIT
    assert enc.name == "timm:resnet18" and enc.input_size == 224
    with torch.inference_mode():
        assert enc(torch.zeros(2, 3, 224, 224)).shape == (2, 512)
    # weights saved from the same architecture load; their file hash is the weights id
    torch.save(enc.net.state_dict(), tmp_path / "r18.pth")
    loaded = encoders.create_encoder("timm:resnet18", weights=tmp_path / "r18.pth")
    assert loaded.weights_id.startswith(f"{tmp_path / 'r18.pth'} sha256:")
    out = tmp_path / "f.h5"
    extract.extract_slide_features(
        synth_slides.tiny, tiny_coords, out, encoder=loaded, batch_size=4
    )
    with h5py.File(out) as f:
        assert f["features"].shape[1] == 512 and f.attrs["encoder"] == "timm:resnet18"
    with pytest.raises(ValueError, match="timm has no model 'no_such_net'"):
        encoders.create_encoder("timm:no_such_net")
    with pytest.raises(ValueError, match=r"timm:<any timm model name>"):
        encoders.create_encoder("resnet51")
