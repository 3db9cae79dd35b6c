"""Clinical labels, cross-validation folds and feature bags (HDF5 write, read, lazy store)."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from mmsurv.io import atomic_path, py_value

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- clinical
def read_clinical(tsv: str | os.PathLike[str]) -> pd.DataFrame:
    """Read the clinical TSV into (case_id index, survival_months float, event bool), validated."""
    path = Path(tsv)
    if not path.is_file():
        raise FileNotFoundError(f"clinical table not found: {path}")
    table = pd.read_csv(path, sep="\t", dtype={"case_id": str})
    missing = [c for c in ("case_id", "survival_months", "event") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    dup = table["case_id"][table["case_id"].duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"{path}: duplicated case ids: {dup[:20]}")
    table = table.set_index("case_id")
    raw = table["survival_months"]
    time = pd.to_numeric(raw, errors="coerce")
    text = raw.notna() & time.isna()
    if text.any():
        bad = {c: str(v) for c, v in raw[text].items()}
        raise ValueError(
            f"{path}: survival_months is not a number for cases {list(bad)[:20]} "
            f"(values {list(bad.values())[:20]}); give months as a plain number"
        )
    for what, bad_mask in (("missing", raw.isna()), ("negative", time < 0)):
        if bad_mask.any():
            bad_time = table.index[bad_mask].tolist()
            raise ValueError(f"{path}: {what} survival_months for cases {bad_time[:20]}")
    if not np.isfinite(time.to_numpy(dtype=float)).all():
        bad_time = table.index[~np.isfinite(time.to_numpy(dtype=float))].tolist()
        raise ValueError(f"{path}: infinite survival_months for cases {bad_time[:20]}")
    # 0.0 / 1.0 / False / True hash like 0 / 1, so they map too; anything else → None → error.
    ev = table["event"].map(lambda v: {0: False, 1: True, "0": False, "1": True}.get(v))
    bad_event = table.index[ev.isna()].tolist()
    if bad_event:
        raise ValueError(f"{path}: event must be 0 or 1; bad values for cases {bad_event[:20]}")
    out = table.drop(columns=["survival_months", "event"]).copy()
    out["survival_months"] = time.astype(float)
    out["event"] = ev.astype(bool)
    return out


# --------------------------------------------------------------------------- folds
def make_folds(clinical: pd.DataFrame, n_folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Assign each case one held-out fold, stratified by event × time quartile when possible."""
    # Imported here: sklearn (+ scipy) costs seconds of start-up that every train job importing
    # this module (read_clinical, BagStore) would otherwise pay without making folds.
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(clinical)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if n < n_folds:
        raise ValueError(f"cannot make {n_folds} folds from {n} cases")
    events = clinical["event"].to_numpy(dtype=bool)
    ranks = clinical["survival_months"].rank(method="first").to_numpy()
    quartile = np.minimum((4 * (ranks - 1) / n).astype(int), 3)
    candidates = [
        ("event x time quartile", events.astype(int) * 4 + quartile),
        ("event", events.astype(int)),
    ]
    X = np.zeros((n, 1))
    splitter: Any = None
    labels: np.ndarray | None = None
    for name, lab in candidates:
        counts = np.bincount(lab)
        if counts[counts > 0].min() >= n_folds:
            splitter, labels = StratifiedKFold(n_folds, shuffle=True, random_state=seed), lab
            log.info("folds stratified by %s", name)
            break
    if splitter is None:
        log.warning("strata too small for %d folds: folds are not stratified", n_folds)
        splitter = KFold(n_folds, shuffle=True, random_state=seed)
    fold = np.full(n, -1, dtype=np.int64)
    for k, (_, test_idx) in enumerate(splitter.split(X, labels)):
        fold[test_idx] = k
    return pd.DataFrame({"case_id": clinical.index.astype(str), "fold": fold})


def write_splits(splits: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write the case → fold table as TSV (atomically)."""
    with atomic_path(path) as tmp:
        splits[["case_id", "fold"]].to_csv(tmp, sep="\t", index=False)


def read_splits(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a splits TSV (case_id str, fold int), checking each case appears once."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"splits table not found: {path}")
    table = pd.read_csv(path, sep="\t", dtype={"case_id": str})
    missing = [c for c in ("case_id", "fold") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    dup = table["case_id"][table["case_id"].duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"{path}: cases listed in more than one fold: {dup[:20]}")
    if not pd.api.types.is_integer_dtype(table["fold"]) or (table["fold"] < 0).any():
        raise ValueError(f"{path}: fold must be a non-negative integer")
    return table[["case_id", "fold"]]


# --------------------------------------------------------------------------- bags
def write_bags(
    out_h5: str | os.PathLike[str],
    case_to_slide_features: Mapping[str, Sequence[tuple[str, np.ndarray]]],
    attrs: Mapping[str, Any],
) -> None:
    """Write per-case bags (slides concatenated in the given order) with provenance attrs."""
    if "feature_dim" in attrs:
        dim = int(attrs["feature_dim"])
    else:
        first = next(
            (np.asarray(f) for slides in case_to_slide_features.values() for _, f in slides), None
        )
        if first is None or first.ndim != 2:
            raise ValueError(f"{out_h5}: cannot infer the feature dim; pass attrs['feature_dim']")
        dim = int(first.shape[1])
    with atomic_path(out_h5) as tmp:
        with h5py.File(tmp, "w") as h5:
            for key, value in attrs.items():
                h5.attrs[key] = value
            h5.attrs["feature_dim"] = dim
            cases = h5.create_group("cases")
            for case_id, slides in case_to_slide_features.items():
                feats, index = [], []
                for i, (slide_id, arr) in enumerate(slides):
                    arr = np.asarray(arr, dtype=np.float32)
                    if arr.ndim != 2 or arr.shape[1] != dim:
                        raise ValueError(
                            f"{out_h5}: case {case_id} slide {slide_id}: features of shape "
                            f"{arr.shape}, expected (N, {dim})"
                        )
                    feats.append(arr)
                    index.append(np.full(arr.shape[0], i, dtype=np.int64))
                features = np.concatenate(feats) if feats else np.zeros((0, dim), np.float32)
                slide_index = np.concatenate(index) if index else np.zeros(0, np.int64)
                if features.shape[0] == 0:
                    warnings.warn(f"case {case_id}: no patches in any slide", stacklevel=2)
                grp = cases.create_group(str(case_id))
                grp.create_dataset("features", data=features)
                grp.create_dataset("slide_index", data=slide_index)
                grp.attrs["slide_ids"] = [str(s) for s, _ in slides]


def bag_attrs(bags_h5: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the file-level attributes of a bags.h5 (encoder, weights, feature_dim)."""
    path = Path(bags_h5)
    if not path.is_file():
        raise FileNotFoundError(f"bags file not found: {path}")
    with h5py.File(path, "r") as h5:
        return {k: py_value(v) for k, v in h5.attrs.items()}


class BagStore(Mapping[str, np.ndarray]):
    """Lazy read-only access to the case bags of one bags.h5, opened once."""

    def __init__(self, bags_h5: str | os.PathLike[str]) -> None:
        self.path = Path(bags_h5)
        if not self.path.is_file():
            raise FileNotFoundError(f"bags file not found: {self.path}")
        self._h5 = h5py.File(self.path, "r")
        if "cases" not in self._h5:
            self._h5.close()
            raise ValueError(f"{self.path}: no group 'cases'")
        self._cases = self._h5["cases"]

    def __getitem__(self, case_id: str) -> np.ndarray:
        if case_id not in self._cases:
            raise KeyError(f"{self.path}: no bag for case {case_id!r}")
        return np.asarray(self._cases[case_id]["features"][()], dtype=np.float32)

    def __iter__(self):  # noqa: ANN204 - Mapping protocol
        return iter(list(self._cases.keys()))

    def __len__(self) -> int:
        return len(self._cases)

    def __contains__(self, case_id: object) -> bool:
        return isinstance(case_id, str) and case_id in self._cases

    def n_patches(self, case_id: str) -> int:
        """Number of patches of a case without reading its features."""
        if case_id not in self._cases:
            raise KeyError(f"{self.path}: no bag for case {case_id!r}")
        return int(self._cases[case_id]["features"].shape[0])

    def close(self) -> None:
        """Close the HDF5 handle."""
        if self._h5.id.valid:
            self._h5.close()

    def __enter__(self) -> BagStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_bags(bags_h5: str | os.PathLike[str], case_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Read the bags of the given cases into memory; a missing case raises KeyError naming it."""
    with BagStore(bags_h5) as store:
        absent = [c for c in case_ids if c not in store]
        if absent:
            raise KeyError(f"{bags_h5}: no bags for cases {absent[:20]}")
        return {c: store[c] for c in case_ids}
