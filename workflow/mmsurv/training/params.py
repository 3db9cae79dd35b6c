"""Training params: their defaults, and the check that fills them in and rejects bad values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmsurv.config import LEAKY_SELECTION, MODEL_SELECTIONS, model_selection_error

__all__ = [
    "BINS_FIT_ON",
    "CALLER_KEYS",
    "LEAKY_SELECTION",
    "DEFAULT_PARAMS",
    "L1_SCALING",
    "L1_SCOPE",
    "MISSING_MODALITY",
    "MODEL_SELECTION_POLICIES",
    "OMIC_INPUT",
    "PATH_NORM",
    "model_params",
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
    "bins_fit_on": "train",
    "l1_scaling": "per_step",
    "l1_scope": "all",
    "omic_input": "families",
    # z-score the patch features per dimension with the training patches' statistics
    "path_norm": "zscore",
    "partial_step": True,
    # multimodal models: each training case loses pathology or genomics (p/2 each, never both)
    "modality_dropout": 0.0,
    "num_threads": None,  # set by scripts/train.py from the rule's threads; not a config key
    "model_kwargs": {},
    # cox_clinical's covariates: clinical.tsv columns (text ones one-hot, numeric standardised)
    "clinical_covariates": ["age", "sex"],
}
# last_epoch: the weights after the last epoch, no validation data looked at (MCAT).
# inner_val: the epoch with the lowest NLL on an inner validation split of the training folds
# (stratified, seeded); the held-out fold is never looked at either way.
# best_test_epoch_leaky: the epoch with the best held-out c-index, only by this explicit name;
# its outputs record the last-epoch c-index beside it and every table says "leaky".
MODEL_SELECTION_POLICIES = MODEL_SELECTIONS
# A split case without the modality the model reads: error (missing_policy drop: the folds
# hold complete cases only, so this is a broken input) or exclude (missing_policy
# keep_unimodal: the job trains and scores the cases its model can use, and lists the others).
MISSING_MODALITY = ("error", "exclude")
# MCAT-compatible protocol switches; the first value of each is the default (see the schema).
# bins_fit_on: the cases the time-bin edges are fitted on: the training cases, or all cases of
# the job (training + held-out fold, MCAT; leaks the held-out times into the bin edges).
BINS_FIT_ON = ("train", "all")
# l1_scaling: per_step = l1_reg·Σ|w| is divided by grad_accum with the case loss (one full step
# carries l1_reg once); per_case = it is added undivided to each case (MCAT's lambda_reg).
L1_SCALING = ("per_step", "per_case")
# l1_scope: the parameters the L1 penalty covers: all of them, or the genomics branch only.
L1_SCOPE = ("all", "omic")
# omic_input: models on the concatenated omics vector get the family blocks (a gene in two
# families twice) or each omics column once.
OMIC_INPUT = ("families", "unique_genes")
# path_norm: the patch features z-scored per dimension on the training cases' patches, or raw
# (training/path_scaler.py).
PATH_NORM = ("zscore", "none")
_CHOICES = {
    "bins_fit_on": BINS_FIT_ON,
    "l1_scaling": L1_SCALING,
    "l1_scope": L1_SCOPE,
    "omic_input": OMIC_INPUT,
    "missing_modality": MISSING_MODALITY,
    "path_norm": PATH_NORM,
}
# Keys of the workflow's `training:` config that train_fold takes as arguments (or ignores);
# `protocol` is expanded into the keys above when the config is parsed.
# `seeds` is expanded into one job per seed (the job's seed comes from its wildcard); `seed`,
# its former single-valued form, is refused by the config check and here per model.
CALLER_KEYS = ("models", "seeds", "seed", "device", "protocol")
JOB_LIST_KEYS = ("models", "seeds")  # which jobs exist, not how one trains


def model_params(training: Mapping[str, Any], model: str) -> dict[str, Any]:
    """One model's training params: the shared `training:` keys, then `per_model[model]` over them.

    `model_kwargs` in the config maps model -> kwargs; the result holds only this model's. The
    keys that list the jobs (`models`, `seeds`) are left out: these are a train job's params
    in the rule, and Snakemake reruns a job whose params change, so adding a model or a seed
    must leave the jobs already run untouched.
    """
    override = dict((training.get("per_model") or {}).get(model) or {})
    fixed = sorted(set(override) & {*CALLER_KEYS, "per_model"})
    if fixed:
        raise ValueError(
            f"config key training.per_model.{model}: {fixed} cannot differ between models"
        )
    unknown = sorted(set(override) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(
            f"config key training.per_model.{model}: unknown training keys {unknown}; "
            f"allowed: {sorted(set(DEFAULT_PARAMS) - {'num_threads'})}"
        )
    params = {k: v for k, v in training.items() if k not in ("per_model", *JOB_LIST_KEYS)}
    params["model_kwargs"] = dict(params.get("model_kwargs") or {}).get(model, {})
    params.update(override)
    return params


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
    for key, choices in _CHOICES.items():
        if p[key] not in choices:
            raise ValueError(f"params.{key}={p[key]!r}; choose one of {choices}")
    cov = p["clinical_covariates"]
    if (
        not isinstance(cov, list | tuple)
        or not cov
        or not all(isinstance(c, str) and c for c in cov)
        or len(set(cov)) != len(cov)
    ):
        raise ValueError(
            f"params.clinical_covariates must be a non-empty list of distinct column names, "
            f"got {cov!r}"
        )
    p["clinical_covariates"] = list(cov)
    p["modality_dropout"] = float(p["modality_dropout"])
    if not 0 <= p["modality_dropout"] < 1:
        raise ValueError(f"params.modality_dropout must be in [0, 1), got {p['modality_dropout']}")
    if not isinstance(p["partial_step"], bool):
        raise ValueError(f"params.partial_step must be true or false, got {p['partial_step']!r}")
    msg = model_selection_error(p["model_selection"], "params.model_selection")
    if msg is not None:
        raise ValueError(msg)
    return p
