"""Training params: their defaults, and the check that fills them in and rejects bad values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "CALLER_KEYS",
    "DEFAULT_PARAMS",
    "MISSING_MODALITY",
    "MODEL_SELECTION_POLICIES",
    "resolve_params",
]

DEFAULT_PARAMS: dict[str, Any] = {
    "epochs": 20,
    "lr": 2e-4,
    "weight_decay": 1e-5,
    "grad_accum": 32,
    "n_bins": 4,
    "alpha_surv": 0.0,
    "max_patches": 4096,
    "weighted_sampling": True,
    "l1_reg": 0.0,
    "lambda_sim": 1.0,
    "model_selection": "last_epoch",
    "inner_val_fraction": 0.2,
    "missing_modality": "error",
    "num_threads": None,
    "model_kwargs": {},
}
# last_epoch: the weights after the last epoch, no validation data looked at (MCAT).
# inner_val: the epoch with the lowest NLL on an inner validation split of the training folds
# (stratified, seeded); the held-out fold is never looked at either way.
MODEL_SELECTION_POLICIES = ("last_epoch", "inner_val")
# A split case without the modality the model reads: error (missing_policy drop: the folds
# hold complete cases only, so this is a broken input) or exclude (missing_policy
# keep_unimodal: the job trains and scores the cases its model can use, and lists the others).
MISSING_MODALITY = ("error", "exclude")
# Keys of the workflow's `training:` config that train_fold takes as arguments (or ignores).
CALLER_KEYS = ("models", "seed", "device")


def resolve_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Fill defaults into the training params and reject unknown keys or bad values."""
    params = {k: v for k, v in (params or {}).items() if k not in CALLER_KEYS}
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(f"unknown training params {unknown}; allowed: {sorted(DEFAULT_PARAMS)}")
    p = {**DEFAULT_PARAMS, **params}
    p["model_kwargs"] = dict(p["model_kwargs"] or {})
    for key in ("epochs", "grad_accum", "n_bins"):
        if int(p[key]) < 1:
            raise ValueError(f"params.{key} must be >= 1, got {p[key]}")
        p[key] = int(p[key])
    if p["max_patches"] is not None:
        if int(p["max_patches"]) < 1:
            raise ValueError(f"params.max_patches must be >= 1 or null, got {p['max_patches']}")
        p["max_patches"] = int(p["max_patches"])
    for key in ("lr", "weight_decay", "alpha_surv", "l1_reg", "lambda_sim", "inner_val_fraction"):
        p[key] = float(p[key])
    if not 0 < p["inner_val_fraction"] < 1:
        raise ValueError(
            f"params.inner_val_fraction must be in (0, 1), got {p['inner_val_fraction']}"
        )
    if p["missing_modality"] not in MISSING_MODALITY:
        raise ValueError(
            f"params.missing_modality={p['missing_modality']!r}; choose one of {MISSING_MODALITY}"
        )
    if p["model_selection"] not in MODEL_SELECTION_POLICIES:
        raise ValueError(
            f"params.model_selection={p['model_selection']!r} is not supported; "
            f"choose one of {MODEL_SELECTION_POLICIES}"
        )
    return p
