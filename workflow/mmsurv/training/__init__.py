"""Training stage (rules/training.smk): one cancer x model x fold job, its predictions and logs."""

from __future__ import annotations

from typing import Any

__all__ = ["model_params", "train_fold"]


def __getattr__(name: str) -> Any:
    """Import on first use: the rules read `training.params` at parse time, without torch."""
    if name == "model_params":
        from mmsurv.training.params import model_params

        return model_params
    if name == "train_fold":
        from mmsurv.training.train import train_fold

        return train_fold
    raise AttributeError(f"module 'mmsurv.training' has no attribute {name!r}")
