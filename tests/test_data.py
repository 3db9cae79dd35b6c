"""bags.data (clinical table, folds, bags) and training.dataset (time bins, dataset, sampler)."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from mmsurv.bags.data import (
    BagStore,
    bag_attrs,
    make_folds,
    read_bags,
    read_clinical,
    read_splits,
    write_bags,
    write_splits,
)
from mmsurv.training.dataset import (
    SurvivalDataset,
    discretize,
    make_weighted_sampler,
    time_bin_edges,
)


def _clinical_tsv(tmp_path, rows):
    path = tmp_path / "clinical.tsv"
    pd.DataFrame(rows, columns=["case_id", "survival_months", "event"]).to_csv(
        path, sep="\t", index=False
    )
    return path


def test_read_clinical_types(tmp_path):
    df = read_clinical(_clinical_tsv(tmp_path, [["007", 12.5, 1], ["008", 0.0, 0]]))
    assert list(df.index) == ["007", "008"]
    assert df["event"].dtype == bool and df["event"].tolist() == [True, False]
    assert df["survival_months"].dtype == float


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([["a", -1.0, 1], ["b", 2.0, 0]], r"negative survival_months for cases \['a'\]"),
        ([["a", None, 1], ["b", 2.0, 0]], r"missing survival_months for cases \['a'\]"),
        (
            [["a", "12 months", 1], ["b", 2.0, 0]],
            r"survival_months is not a number for cases \['a'\] \(values \['12 months'\]\)",
        ),
        ([["a", 1.0, 2], ["b", 2.0, 0]], r"event must be 0 or 1.*\['a'\]"),
        ([["a", 1.0, 1], ["a", 2.0, 0]], r"duplicated case ids: \['a'\]"),
    ],
)
def test_read_clinical_errors_name_cases(tmp_path, rows, match):
    with pytest.raises(ValueError, match=match):
        read_clinical(_clinical_tsv(tmp_path, rows))


def test_time_bins_mcat_quantiles():
    times = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 50.0, 0.5])
    events = np.array([True, True, True, True, True, False, False])
    edges = time_bin_edges(times, events, n_bins=4)
    # Quartiles of the uncensored times 1..5 are 1, 2, 3, 4, 5; outer edges → min/max of all ± eps.
    np.testing.assert_allclose(edges, [0.5 - 1e-6, 2.0, 3.0, 4.0, 50.0 + 1e-6])
    np.testing.assert_array_equal(
        discretize([0.5, 1.9, 2.0, 3.5, 4.0, 50.0], edges), [0, 0, 1, 2, 3, 3]
    )
    # outside the edges → clipped into the first / last bin
    np.testing.assert_array_equal(discretize([-3.0, 1e6], edges), [0, 3])


def test_time_bins_errors():
    with pytest.raises(ValueError, match="at least n_bins=4 uncensored"):
        time_bin_edges([1.0, 2.0, 3.0], np.array([True, True, False]))
    with pytest.raises(TypeError, match="bool"):
        time_bin_edges([1.0, 2.0], [1, 0])
    with pytest.raises(ValueError, match="strictly increasing"):
        time_bin_edges([1.0] * 6, np.ones(6, dtype=bool))


def _clinical_frame(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"survival_months": rng.exponential(30, n), "event": rng.random(n) < 0.4},
        index=pd.Index([f"c{i:03d}" for i in range(n)], name="case_id"),
    )


def test_make_folds_partition_and_stratification(tmp_path):
    clin = _clinical_frame()
    folds = make_folds(clin, n_folds=5, seed=1)
    assert sorted(folds["case_id"]) == sorted(clin.index)
    assert set(folds["fold"]) == set(range(5))
    # event rate roughly balanced across folds
    ev = clin.loc[folds["case_id"], "event"].to_numpy()
    per_fold = [ev[folds["fold"].to_numpy() == k].sum() for k in range(5)]
    assert max(per_fold) - min(per_fold) <= 1
    pd.testing.assert_frame_equal(folds, make_folds(clin, n_folds=5, seed=1))
    write_splits(folds, tmp_path / "splits.tsv")
    back = read_splits(tmp_path / "splits.tsv")
    pd.testing.assert_frame_equal(back, folds)


def test_make_folds_small_strata_fall_back():
    clin = _clinical_frame(n=7)
    clin["event"] = [True] + [False] * 6  # one event: cannot stratify 5 ways
    folds = make_folds(clin, n_folds=5)
    assert len(folds) == 7 and set(folds["fold"]) == set(range(5))


def test_read_splits_rejects_duplicates(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("case_id\tfold\na\t0\na\t1\n")
    with pytest.raises(ValueError, match=r"\['a'\]"):
        read_splits(path)


def test_write_and_read_bags(tmp_path):
    out = tmp_path / "bags.h5"
    a1, a2 = np.ones((3, 4), np.float32), np.zeros((2, 4), np.float32)
    with pytest.warns(UserWarning, match="case empty"):
        write_bags(
            out,
            {"A": [("s1", a1), ("s2", a2)], "empty": [("s3", np.zeros((0, 4), np.float32))]},
            {"encoder": "resnet50_trunc", "weights": "random-init"},
        )
    with h5py.File(out) as h5:
        np.testing.assert_array_equal(h5["cases/A/slide_index"][()], [0, 0, 0, 1, 1])
    assert bag_attrs(out) == {
        "encoder": "resnet50_trunc",
        "weights": "random-init",
        "feature_dim": 4,
    }
    bags = read_bags(out, ["A", "empty"])
    assert bags["A"].shape == (5, 4) and bags["A"].dtype == np.float32
    assert bags["empty"].shape == (0, 4)
    with BagStore(out) as store:
        assert "A" in store and store.n_patches("A") == 5 and len(store) == 2
        with pytest.raises(KeyError, match="'B'"):
            store["B"]
    with pytest.raises(KeyError, match=r"\['B'\]"):
        read_bags(out, ["A", "B"])
    with pytest.raises(ValueError, match="case X slide s"):
        write_bags(tmp_path / "bad.h5", {"A": [("s1", a1)], "X": [("s", np.ones((2, 5)))]}, {})


def test_dataset_items_and_patch_subsampling():
    bags = {"a": np.arange(40, dtype=np.float32).reshape(10, 4), "b": np.ones((2, 4), np.float32)}
    omics = [np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[5.0], [6.0]])]
    kw = dict(labels=[0, 3], events=[True, False], times=[1.0, 9.0], bags=bags, omics=omics)
    train = SurvivalDataset(["a", "b"], training=True, max_patches=4, **kw)
    item = train[0]
    assert item["case_id"] == "a" and item["path"].shape == (4, 4)
    assert len(set(item["path"][:, 0].tolist())) == 4  # distinct patches
    assert item["label"].dtype == torch.long and item["event"] is True
    assert [o.tolist() for o in item["omics"]] == [[1.0, 2.0], [5.0]]
    assert train[1]["path"].shape == (2, 4)
    evaluation = SurvivalDataset(["a", "b"], training=False, max_patches=4, **kw)
    assert evaluation[0]["path"].shape == (10, 4)  # all patches at evaluation
    no_path = SurvivalDataset(["a"], labels=[0], events=[True], times=[1.0])
    assert no_path[0]["path"] is None and no_path[0]["omics"] is None
    with pytest.raises(KeyError, match=r"\['z'\]"):
        SurvivalDataset(["z"], labels=[0], events=[True], times=[1.0], bags=bags)


def test_weighted_sampler_balances_strata():
    labels = np.array([0] * 90 + [1] * 10)
    events = np.array([True] * 100)
    sampler = make_weighted_sampler(labels, events, generator=torch.Generator().manual_seed(0))
    w = sampler.weights.numpy()
    assert w[0] * 90 == pytest.approx(w[-1] * 10)  # each stratum has the same total weight
    draws = np.array([labels[i] for _ in range(20) for i in sampler])
    assert 0.4 < draws.mean() < 0.6
