"""Patch-feature standardisation: per-dimension z-scores fitted on a fold's training patches.

Raw encoder features are not centred and their dimensions differ in scale (ReLU outputs; a
random-init ResNet-50's 1,024 dimensions have spreads of ~0.08 around means of the same size).
The first linear layer of a MIL model then sees a signal small next to its bias, and ~100
optimiser steps at lr 2e-4 do not find it: on the demo's DEMO-BLCA, attn_mil on raw features
scored c 0.46 with *lower* attention in the planted risk regions (0.84 vs 1.03 x the mean),
and on z-scored features c 0.72 with 3.17 vs 0.39 (benchmarks/results/path_norm.md).

The statistics come from the training cases' patches only (every patch of every bag, not the
held-out fold), are saved in the fold's checkpoint, and are re-applied from there by every
later reader of that model (heatmaps, attribution), so a model always sees its inputs scaled
as in training. `training.path_norm: none` keeps raw features (MCAT's and CLAM's protocol).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["PathScaler", "ScaledBags"]

_MIN_SCALE = 1e-6  # a dimension with less spread than this (dead ReLU unit) is only centred


@dataclass(frozen=True)
class PathScaler:
    """Per-dimension mean and scale of the training patches: x -> (x - mean) / scale."""

    mean: np.ndarray  # (D,) float32
    scale: np.ndarray  # (D,) float32, > 0
    n_patches: int

    @classmethod
    def fit(cls, bags: Mapping[str, np.ndarray], case_ids: Sequence[str]) -> PathScaler:
        """Mean and standard deviation over every patch of `case_ids`' bags, one bag at a time.

        Streams the bags (a real cohort's do not fit in memory together) and merges per-bag
        float64 moments with Chan et al.'s pairwise update, which stays exact where summing
        squares would cancel. Written here rather than with sklearn's StandardScaler.partial_fit
        because importing sklearn costs every deep training job seconds of start-up.
        """
        if not case_ids:
            raise ValueError("path_norm zscore: no training cases to fit the patch statistics on")
        n, mean, m2 = 0, None, None
        for case in case_ids:
            x = np.asarray(bags[case], dtype=np.float64)
            if x.ndim != 2 or x.shape[0] == 0:
                raise ValueError(f"path_norm zscore: case {case}: bag shape {x.shape} (need N > 0)")
            if mean is None:
                mean, m2 = np.zeros(x.shape[1]), np.zeros(x.shape[1])
            if x.shape[1] != mean.shape[0]:
                raise ValueError(
                    f"path_norm zscore: case {case} has {x.shape[1]}-d features, the others "
                    f"{mean.shape[0]}-d"
                )
            k, mean_k = x.shape[0], x.mean(axis=0)
            m2_k = ((x - mean_k) ** 2).sum(axis=0)
            delta, total = mean_k - mean, n + k
            mean = mean + delta * (k / total)
            m2 = m2 + m2_k + delta**2 * (n * k / total)
            n = total
        std = np.sqrt(m2 / n)
        scale = np.where(std < _MIN_SCALE, 1.0, std)
        return cls(mean.astype(np.float32), scale.astype(np.float32), int(n))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """The (N, D) features z-scored, float32."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"path_norm: features of shape {x.shape}, fitted on {self.mean.shape[0]}-d ones"
            )
        return (x - self.mean) / self.scale

    def state(self) -> dict[str, Any]:
        """The statistics as tensors, for the fold's checkpoint (torch.load weights_only)."""
        return {
            "mean": torch.from_numpy(self.mean.copy()),
            "scale": torch.from_numpy(self.scale.copy()),
            "n_patches": self.n_patches,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], where: str = "checkpoint") -> PathScaler:
        """Rebuild from `state`; a malformed one is an error naming `where`."""
        try:
            mean = np.asarray(state["mean"], dtype=np.float32)
            scale = np.asarray(state["scale"], dtype=np.float32)
            n = int(state["n_patches"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: malformed path_scaler ({err!r})") from None
        if mean.ndim != 1 or mean.shape != scale.shape or not np.all(scale > 0):
            raise ValueError(f"{where}: path_scaler mean/scale shapes {mean.shape}/{scale.shape}")
        return cls(mean, scale, n)


class ScaledBags(Mapping[str, np.ndarray]):
    """A read-only view of a bag store whose bags come back z-scored by `scaler`."""

    def __init__(self, bags: Mapping[str, np.ndarray], scaler: PathScaler) -> None:
        self._bags, self.scaler = bags, scaler

    def __getitem__(self, case_id: str) -> np.ndarray:
        return self.scaler.transform(self._bags[case_id])

    def __iter__(self) -> Iterator[str]:
        return iter(self._bags)

    def __len__(self) -> int:
        return len(self._bags)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._bags
