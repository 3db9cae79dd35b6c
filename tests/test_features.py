"""Tests for mmsurv.features: encoder registry, weights loading and per-slide extraction."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from mmsurv import features, wsi
from mmsurv.wsi import SegmentationParams, tile_slide

torch.set_num_threads(1)
SEG = SegmentationParams(a_t=1.0, a_h=1.0)  # the tiny slide is smaller than CLAM's a_t


@pytest.fixture(scope="module")
def tiny_coords(synth_slides, tmp_path_factory):
    """Coords h5 of the tiny slide (a handful of 20x tiles)."""
    r = tile_slide(synth_slides.tiny, seg=SEG)
    assert 3 <= r.attrs["n_tiles"] <= 6
    path = tmp_path_factory.mktemp("coords") / "tiny.h5"
    wsi.write_coords_h5(path, r)
    return path


@pytest.mark.parametrize("name", features.list_encoders())
def test_registered_encoders_forward(name):
    enc = features.create_encoder(name)
    assert enc.weights_id == "random-init" and enc.input_size == 224
    with torch.inference_mode():
        out = enc(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, enc.dim) and torch.isfinite(out).all()


def test_registry_errors_and_dims(caplog):
    with pytest.raises(ValueError, match="resnet50_trunc"):
        features.create_encoder("uni2")
    with caplog.at_level("WARNING", logger="mmsurv.features"):
        enc = features.create_encoder("resnet50_trunc")
    assert "RANDOMLY INITIALISED" in caplog.text
    assert enc.dim == 1024 and features.create_encoder("resnet50").dim == 2048
    # random init is reproducible, so features of different jobs are comparable
    again = features.create_encoder("resnet50_trunc")
    for a, b in zip(enc.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_weights_loading(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth. Download"):
        features.create_encoder("resnet50_trunc", weights=str(tmp_path / "missing.pth"))
    src = features.create_encoder("resnet50")
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
        full = features.create_encoder("resnet50", weights=str(tmp_path / fname))
        trunc = features.create_encoder("resnet50_trunc", weights=str(tmp_path / fname))
        assert full.weights_id.startswith(str(tmp_path / fname) + " sha256:")
        assert len(full.weights_id.split("sha256:")[1]) == 16
        with torch.inference_mode():
            torch.testing.assert_close(full(x), src(x))
            assert trunc(x).shape == (1, 1024)
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="partial.pth"):
        features.create_encoder("resnet50_trunc", weights=str(tmp_path / "partial.pth"))


def test_extract_outputs(synth_slides, tiny_coords, tmp_path):
    out = tmp_path / "f" / "tiny.h5"
    n = features.extract_slide_features(synth_slides.tiny, tiny_coords, out, batch_size=2)
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
    features.extract_slide_features(
        synth_slides.tiny, tmp_path / "rev.h5", tmp_path / "rev_f.h5", batch_size=3
    )
    with h5py.File(tmp_path / "rev_f.h5") as f:
        np.testing.assert_allclose(f["features"][()], feats[::-1], rtol=1e-4, atol=1e-5)
    # a prebuilt encoder (one load for a batch of slides) gives the same features
    enc = features.create_encoder("resnet50_trunc")
    features.extract_slide_features(synth_slides.tiny, tiny_coords, tmp_path / "e.h5", encoder=enc)
    with h5py.File(tmp_path / "e.h5") as f:
        np.testing.assert_allclose(f["features"][()], feats, rtol=1e-4, atol=1e-5)
        assert f.attrs["encoder"] == "resnet50_trunc"
    with pytest.raises(ValueError, match="create_encoder"):
        features.extract_slide_features(
            synth_slides.tiny, tiny_coords, tmp_path / "x.h5", encoder=enc, weights="w.pth"
        )
    # tiffslide reads the same pixels: nearly identical features
    features.extract_slide_features(
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
    calls = {"n": 0}
    real = features.read_tile

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("Corrupt JPEG data")
        return real(*args, **kwargs)

    monkeypatch.setattr(features, "read_tile", flaky)
    out = tmp_path / "killed" / "tiny.h5"
    out.parent.mkdir()
    with pytest.raises(OSError, match="Corrupt JPEG"):
        features.extract_slide_features(synth_slides.tiny, tiny_coords, out, batch_size=2)
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_empty_coords(synth_slides, tmp_path):
    with pytest.warns(UserWarning):
        r = tile_slide(synth_slides.white)
    wsi.write_coords_h5(tmp_path / "white.h5", r)
    n = features.extract_slide_features(
        synth_slides.white, tmp_path / "white.h5", tmp_path / "o.h5"
    )
    assert n == 0
    with h5py.File(tmp_path / "o.h5") as f:
        assert f["features"].shape == (0, 1024) and f["coords"].shape == (0, 2)


def test_missing_inputs(synth_slides, tiny_coords, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.svs"):
        features.extract_slide_features(tmp_path / "nope.svs", tiny_coords, tmp_path / "o.h5")
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        features.extract_slide_features(synth_slides.tiny, tmp_path / "nope.h5", tmp_path / "o.h5")
