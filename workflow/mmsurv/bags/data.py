"""Clinical labels, discrete time bins, cross-validation folds, feature bags and the dataset."""

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
import torch
from sklearn.model_selection import KFold, StratifiedKFold
from torch.utils.data import Dataset, WeightedRandomSampler

from mmsurv.io import atomic_path, py_value

log = logging.getLogger(__name__)

BIN_EPS = 1e-6  # MCAT's padding of the outer bin edges


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
    time = pd.to_numeric(table["survival_months"], errors="coerce")
    bad_time = table.index[~(time >= 0)].tolist()  # NaN compares False
    if bad_time:
        raise ValueError(f"{path}: missing or negative survival_months for cases {bad_time[:20]}")
    # 0.0 / 1.0 / False / True hash like 0 / 1, so they map too; anything else → None → error.
    ev = table["event"].map(lambda v: {0: False, 1: True, "0": False, "1": True}.get(v))
    bad_event = table.index[ev.isna()].tolist()
    if bad_event:
        raise ValueError(f"{path}: event must be 0 or 1; bad values for cases {bad_event[:20]}")
    out = table.drop(columns=["survival_months", "event"]).copy()
    out["survival_months"] = time.astype(float)
    out["event"] = ev.astype(bool)
    return out


# --------------------------------------------------------------------------- time bins
def time_bin_edges(
    times: Sequence[float] | np.ndarray, events: Sequence[bool] | np.ndarray, n_bins: int = 4
) -> np.ndarray:
    """Quantile edges of the uncensored times, outer edges stretched to all cases (MCAT)."""
    # MCAT fits these bins on *all* patients before splitting, which leaks the test fold's
    # times into the labels; callers here pass the training fold only.
    t = np.asarray(times, dtype=float)
    e = np.asarray(events)
    if e.dtype != bool:
        raise TypeError(f"events must be a bool array, got {e.dtype}")
    if t.ndim != 1 or t.shape != e.shape:
        raise ValueError(f"times and events must be 1-D of equal length, got {t.shape}, {e.shape}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("times must be finite and >= 0")
    unc = t[e]
    if unc.size < n_bins:
        raise ValueError(f"need at least n_bins={n_bins} uncensored cases, got {unc.size}")
    edges = np.quantile(unc, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0] = t.min() - BIN_EPS
    edges[-1] = t.max() + BIN_EPS
    if np.any(np.diff(edges) <= 0):
        raise ValueError(f"time bin edges are not strictly increasing (tied times?): {edges}")
    return edges


def discretize(times: Sequence[float] | np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each time for left-closed bins [e_j, e_j+1); outside values are clipped."""
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"edges must be 1-D with >= 2 values, got shape {edges.shape}")
    idx = np.searchsorted(edges, np.asarray(times, dtype=float), side="right") - 1
    return np.clip(idx, 0, edges.size - 2).astype(np.int64)


# --------------------------------------------------------------------------- folds
def make_folds(clinical: pd.DataFrame, n_folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Assign each case one held-out fold, stratified by event × time quartile when possible."""
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


# --------------------------------------------------------------------------- dataset
class SurvivalDataset(Dataset):
    """One item per case: patch bag (optional), per-family omics tensors, bin label, event, time."""

    def __init__(
        self,
        case_ids: Sequence[str],
        *,
        labels: Sequence[int] | np.ndarray,
        events: Sequence[bool] | np.ndarray,
        times: Sequence[float] | np.ndarray,
        bags: Mapping[str, np.ndarray] | None = None,
        omics: Sequence[np.ndarray] | None = None,
        training: bool = False,
        max_patches: int | None = None,
    ) -> None:
        self.case_ids = [str(c) for c in case_ids]
        n = len(self.case_ids)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.events = np.asarray(events, dtype=bool)
        self.times = np.asarray(times, dtype=np.float64)
        for name, arr in (("labels", self.labels), ("events", self.events), ("times", self.times)):
            if arr.shape != (n,):
                raise ValueError(f"{name} has shape {arr.shape}, expected ({n},)")
        if bags is not None:
            absent = [c for c in self.case_ids if c not in bags]
            if absent:
                raise KeyError(f"no patch bag for cases {absent[:20]}")
        self.bags = bags
        if omics is not None:
            for j, block in enumerate(omics):
                if np.asarray(block).shape[0] != n:
                    raise ValueError(f"omics family {j} has {len(block)} rows, expected {n}")
            self.omics = [torch.as_tensor(np.asarray(b, dtype=np.float32)) for b in omics]
        else:
            self.omics = None
        if max_patches is not None and max_patches < 1:
            raise ValueError(f"max_patches must be >= 1 or None, got {max_patches}")
        self.training = training
        self.max_patches = max_patches

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        case_id = self.case_ids[i]
        path = None
        if self.bags is not None:
            path = torch.from_numpy(np.asarray(self.bags[case_id], dtype=np.float32))
            if self.training and self.max_patches is not None and path.shape[0] > self.max_patches:
                keep = torch.randperm(path.shape[0])[: self.max_patches]
                path = path[keep]
        omics = None if self.omics is None else [block[i] for block in self.omics]
        return {
            "case_id": case_id,
            "path": path,
            "omics": omics,
            "label": torch.tensor(self.labels[i], dtype=torch.long),
            "event": bool(self.events[i]),
            "time": float(self.times[i]),
        }


def make_weighted_sampler(
    labels: Sequence[int] | np.ndarray,
    events: Sequence[bool] | np.ndarray,
    generator: torch.Generator | None = None,
) -> WeightedRandomSampler:
    """Sample cases with weights inverse to their (bin × event) stratum size (MCAT)."""
    lab = np.asarray(labels, dtype=np.int64)
    ev = np.asarray(events, dtype=bool)
    if lab.shape != ev.shape or lab.ndim != 1 or lab.size == 0:
        raise ValueError(
            f"labels and events must be 1-D, equal, non-empty: {lab.shape}, {ev.shape}"
        )
    stratum = lab * 2 + ev.astype(np.int64)
    counts = np.bincount(stratum)
    weights = 1.0 / counts[stratum]
    return WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double),
        num_samples=lab.size,
        replacement=True,
        generator=generator,
    )
