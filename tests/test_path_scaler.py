"""path_norm zscore: patch statistics from the training cases only, saved and re-applied."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from test_train import make_cohort, run

from mmsurv.bags.data import read_splits
from mmsurv.heatmaps.scores import load_fold_model, read_case_bag, score_case
from mmsurv.training.outputs import checkpoint_path_scaler, read_checkpoint
from mmsurv.training.path_scaler import PathScaler, ScaledBags

torch.set_num_threads(1)


def test_fit_equals_the_pooled_mean_and_std_of_every_training_patch() -> None:
    """Streamed per-bag moments equal numpy's over the concatenated patches; dead dims scale 1."""
    rng = np.random.default_rng(0)
    bags = {f"c{i}": rng.gamma(0.5, 3.0, size=(int(rng.integers(1, 400)), 6)) for i in range(9)}
    for b in bags.values():
        b[:, 5] = 0.25  # a dead ReLU unit: constant over every patch
    train = ["c0", "c2", "c3", "c5", "c8"]
    scaler = PathScaler.fit(bags, train)
    pooled = np.concatenate([bags[c] for c in train])
    assert scaler.n_patches == len(pooled)
    np.testing.assert_allclose(scaler.mean, pooled.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(scaler.scale[:5], pooled.std(axis=0)[:5], rtol=1e-5)
    assert scaler.scale[5] == 1.0
    z = np.concatenate([ScaledBags(bags, scaler)[c] for c in train])
    np.testing.assert_allclose(z[:, :5].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z[:, :5].std(axis=0), 1.0, rtol=1e-4)
    assert np.all(z[:, 5] == 0.0)
    assert z.dtype == np.float32


def test_training_items_are_sampled_then_z_scored_as_a_scaled_bag_would_give() -> None:
    """max_patches sampling comes first: the transform sees only the kept rows, same numbers."""
    from mmsurv.training.dataset import SurvivalDataset

    rng = np.random.default_rng(1)
    bags = {"a": rng.normal(3.0, 2.0, (5000, 8)).astype(np.float32)}
    scaler = PathScaler.fit(bags, ["a"])
    seen: list[int] = []

    def transform(x: np.ndarray) -> np.ndarray:
        seen.append(len(x))
        return scaler.transform(x)

    common = {"labels": [0], "events": [True], "times": [1.0], "training": True, "max_patches": 64}
    torch.manual_seed(3)
    late = SurvivalDataset(["a"], bags=bags, path_transform=transform, **common)[0]["path"]
    torch.manual_seed(3)
    early = SurvivalDataset(["a"], bags=ScaledBags(bags, scaler), **common)[0]["path"]
    assert seen == [64] and late.shape == (64, 8) and late.dtype == torch.float32
    torch.testing.assert_close(late, early, rtol=0, atol=0)


def test_state_round_trips_and_a_malformed_one_names_its_file() -> None:
    scaler = PathScaler(np.arange(3, dtype=np.float32), np.ones(3, np.float32) * 2, 7)
    back = PathScaler.from_state(scaler.state())
    np.testing.assert_array_equal(back.mean, scaler.mean)
    assert back.n_patches == 7
    with pytest.raises(ValueError, match="fold3/checkpoint.pt.*path_scaler"):
        PathScaler.from_state({"mean": [0.0, 1.0]}, "fold3/checkpoint.pt")
    with pytest.raises(ValueError, match="features of shape"):
        scaler.transform(np.zeros((4, 5), np.float32))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An attn_mil fold trained twice: as is, and with a held-out bag's features replaced."""
    root = tmp_path_factory.mktemp("pathnorm")
    paths = make_cohort(root / "cohort", n=30)
    first = run(paths, root, "attn_mil", fold=0, out="a", epochs=1)
    splits = read_splits(paths["splits_tsv"]).set_index("case_id")
    test_case = str(splits.index[splits["fold"] == 0][0])
    with h5py.File(paths["bags_h5"], "r+") as h5:
        feats = h5[f"cases/{test_case}/features"]
        feats[...] = feats[...] * 50.0 + 100.0
    second = run(paths, root, "attn_mil", fold=0, out="b", epochs=1)
    return root, paths, splits, first, second


def test_statistics_come_from_the_training_cases_only(trained) -> None:
    """A held-out bag changed beyond recognition leaves the fold's statistics bit-equal."""
    root, paths, splits, _, _ = trained
    a = read_checkpoint(root / "a" / "checkpoint.pt", "attn_mil")
    b = read_checkpoint(root / "b" / "checkpoint.pt", "attn_mil")
    sa, sb = checkpoint_path_scaler(a, "a"), checkpoint_path_scaler(b, "b")
    assert sa is not None and sb is not None
    np.testing.assert_array_equal(sa.mean, sb.mean)
    np.testing.assert_array_equal(sa.scale, sb.scale)
    meta = json.loads((root / "a" / "meta.json").read_text())
    assert meta["path_norm"] == "zscore"
    train_ids = meta["train_case_ids"]
    assert set(train_ids).isdisjoint(splits.index[splits["fold"] == 0].astype(str))
    with h5py.File(paths["bags_h5"], "r") as h5:
        n_train = sum(h5[f"cases/{c}/features"].shape[0] for c in train_ids)
    assert meta["path_norm_patches"] == n_train == sa.n_patches


def test_heatmap_scoring_reapplies_the_statistics_and_reproduces_the_risk(trained) -> None:
    """Scoring a held-out case from the checkpoint gives the risk the fold predicted."""
    root, paths, _, _, _ = trained
    fold = load_fold_model(root / "b" / "checkpoint.pt", "attn_mil", "any")
    assert fold.path_scaler is not None
    pred = pd.read_parquet(root / "b" / "predictions.parquet")
    for case, risk in zip(pred["case_id"][:3], pred["risk"][:3], strict=True):
        _, got = score_case(fold, read_case_bag(paths["bags_h5"], case), None, seed=0)
        assert got == pytest.approx(float(risk), abs=1e-5)


def test_path_norm_none_trains_on_raw_features_and_saves_no_statistics(trained, tmp_path):
    _, paths, _, _, _ = trained
    run(paths, tmp_path, "attn_mil", fold=1, out="raw", epochs=1, path_norm="none")
    ckpt = read_checkpoint(tmp_path / "raw" / "checkpoint.pt", "attn_mil")
    assert "path_scaler" not in ckpt and ckpt["meta"]["path_norm"] == "none"
    assert checkpoint_path_scaler(ckpt, "raw") is None
    ckpt["meta"]["path_norm"] = "zscore"  # claims statistics it does not hold
    with pytest.raises(ValueError, match="raw: path_norm 'zscore' but no path_scaler"):
        checkpoint_path_scaler(ckpt, "raw")
