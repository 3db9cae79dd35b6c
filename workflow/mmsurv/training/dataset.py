"""Training-only data: discrete time bins, the per-case survival dataset, the weighted sampler."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

__all__ = [
    "BIN_EPS",
    "SurvivalDataset",
    "discretize",
    "eval_dataset",
    "make_weighted_sampler",
    "time_bin_edges",
]

BIN_EPS = 1e-6  # MCAT's padding of the outer bin edges


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
        path_transform: Callable[[np.ndarray], np.ndarray] | None = None,
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
        # applied to the patches the item keeps: after max_patches sampling, so a 100k-patch
        # bag is z-scored (path_norm) for its 4,096 sampled rows, not for all of them
        self.path_transform = path_transform

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        case_id = self.case_ids[i]
        path = None
        if self.bags is not None:
            feats = np.asarray(self.bags[case_id], dtype=np.float32)
            if self.training and self.max_patches is not None and len(feats) > self.max_patches:
                keep = torch.randperm(feats.shape[0])[: self.max_patches]
                feats = feats[keep.numpy()]
            if self.path_transform is not None:
                feats = self.path_transform(feats)
            path = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
        omics = None if self.omics is None else [block[i] for block in self.omics]
        return {
            "case_id": case_id,
            "path": path,
            "omics": omics,
            "label": torch.tensor(self.labels[i], dtype=torch.long),
            "event": bool(self.events[i]),
            "time": float(self.times[i]),
        }


def eval_dataset(*parts: SurvivalDataset) -> SurvivalDataset:
    """The cases of `parts`, in order, as one evaluation dataset (whole bags, no sampling).

    Scores the training cases with the final model (train_risks.parquet) as the held-out fold
    is scored: training datasets cap and shuffle bags at max_patches, evaluation does not.
    """
    if not parts:
        raise ValueError("eval_dataset needs at least one dataset")
    first = parts[0]
    omics = None
    if first.omics is not None:
        omics = [
            torch.cat([p.omics[j] for p in parts]).numpy()  # type: ignore[index]
            for j in range(len(first.omics))
        ]
    return SurvivalDataset(
        [c for p in parts for c in p.case_ids],
        labels=np.concatenate([p.labels for p in parts]),
        events=np.concatenate([p.events for p in parts]),
        times=np.concatenate([p.times for p in parts]),
        bags=first.bags,
        omics=omics,
        training=False,
        path_transform=first.path_transform,
    )


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
