"""Stage functions behind the Snakemake scripts, on small real files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from mmsurv.data import BagStore, bag_attrs, read_splits
from mmsurv.pipeline import build_case_bags, make_cohort_splits


def _feature_file(path: Path, n: int, *, weights: str = "random-init", dim: int = 8) -> Path:
    with h5py.File(path, "w") as h5:
        h5.create_dataset("features", data=np.full((n, dim), n, np.float32))
        h5.create_dataset("coords", data=np.zeros((n, 2), np.int64))
        h5.attrs["encoder"] = "resnet50_trunc"
        h5.attrs["weights"] = weights
    return path


def test_case_bags_concatenate_slides_in_sheet_order_and_keep_provenance(tmp_path: Path) -> None:
    files = [_feature_file(tmp_path / f"{s}.h5", n) for s, n in [("s1", 3), ("s2", 2), ("s3", 4)]]
    out = tmp_path / "bags.h5"
    build_case_bags(files, [("c1", "s2"), ("c1", "s1"), ("c2", "s3")], out)
    with BagStore(out) as bags:
        assert bags.n_patches("c1") == 5 and bags.n_patches("c2") == 4
        assert bags["c1"][:2, 0].tolist() == [2, 2]  # s2 first, as in the sheet
    assert bag_attrs(out)["weights"] == "random-init"


def test_case_bags_refuse_mixed_encoder_weights(tmp_path: Path) -> None:
    a = _feature_file(tmp_path / "s1.h5", 2)
    b = _feature_file(tmp_path / "s2.h5", 2, weights="imagenet.pth sha256:abc")
    with pytest.raises(ValueError, match="different `weights`"):
        build_case_bags([a, b], [("c1", "s1"), ("c2", "s2")], tmp_path / "bags.h5")
    assert not (tmp_path / "bags.h5").exists()


def test_case_bags_name_a_slide_without_features(tmp_path: Path) -> None:
    a = _feature_file(tmp_path / "s1.h5", 2)
    with pytest.raises(ValueError, match=r"no feature file for slide\(s\) \['s9'\]"):
        build_case_bags([a], [("c1", "s1"), ("c1", "s9")], tmp_path / "bags.h5")


def test_splits_keep_only_cases_with_every_modality(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cases = [f"c{i:02d}" for i in range(30)]
    clinical = pd.DataFrame(
        {
            "case_id": cases,
            "survival_months": rng.uniform(1, 100, 30).round(1),
            "event": rng.integers(0, 2, 30),
        }
    )
    clinical.to_csv(tmp_path / "clinical.tsv", sep="\t", index=False)
    omics = pd.DataFrame({"TP53_rnaseq": rng.normal(size=28)}, index=pd.Index(cases[:28]))
    omics.index.name = "case_id"
    omics.to_parquet(tmp_path / "omics.parquet")
    slide_cases = cases[1:]  # c00 has no slide; c28, c29 have no omics
    make_cohort_splits(
        clinical_tsv=tmp_path / "clinical.tsv",
        omics_parquet=tmp_path / "omics.parquet",
        slide_cases=slide_cases,
        out_tsv=tmp_path / "splits.tsv",
        n_folds=3,
        seed=0,
    )
    splits = read_splits(tmp_path / "splits.tsv")
    assert sorted(splits["case_id"]) == cases[1:28]
    assert sorted(splits["fold"].unique()) == [0, 1, 2]
