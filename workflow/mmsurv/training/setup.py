"""Set-up of one fold job: its cases, inputs, datasets and model, before the first epoch."""

from __future__ import annotations

import inspect
import logging
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.optim.adam import adam as adam_update  # the functional form torch.optim.Adam calls

from mmsurv.bags.data import BagStore, bag_attrs, make_folds, read_clinical, read_splits
from mmsurv.bags.omics import Standardizer, missing_counts, read_families_json
from mmsurv.models import create_model, model_class
from mmsurv.training.clinical import encode_clinical, fit_clinical
from mmsurv.training.dataset import SurvivalDataset, discretize, time_bin_edges
from mmsurv.training.path_scaler import PathScaler, ScaledBags

# One logger for the stage's job log, named as before the stage was split into modules.
log = logging.getLogger("mmsurv.training.train")

__all__ = [
    "Adam",
    "FoldCases",
    "FoldData",
    "FoldInputs",
    "FoldJob",
    "build_datasets",
    "build_model",
    "check_bags",
    "clinical_block",
    "load_inputs",
    "make_optimizer",
    "omics_blocks_for",
    "resolve_device",
    "seed_everything",
    "select_cases",
]


@dataclass(frozen=True)
class FoldJob:
    """What one job trains: cohort x model x fold, its input files, params, seed and device."""

    cohort: str
    model_name: str
    fold: int
    seed: int
    dev: torch.device
    out: Path
    p: dict[str, Any]  # resolved params (resolve_params)
    modalities: frozenset[str]
    bags_h5: str | None
    omics_parquet: str
    families_json: str
    clinical_tsv: str
    splits_tsv: str

    @property
    def need_path(self) -> bool:
        """Whether the model reads the pathology patch bags."""
        return "path" in self.modalities

    @property
    def need_omic(self) -> bool:
        """Whether the model reads the gene-family omics."""
        return "omic" in self.modalities


@dataclass(frozen=True)
class FoldCases:
    """The job's cases: training (inner-validation ones last), held-out test, and excluded."""

    train_ids: list[str]
    test_ids: list[str]
    n_val: int  # inner_val: the last n_val training cases only select the epoch
    excluded: dict[str, str]  # case -> why the model cannot use it (missing_modality exclude)
    # missing_modality exclude, multimodal model: held-out cases lacking one modality -> the
    # withheld one ('path' / 'omic'); scored with it withheld (training/missing.py), not in test_ids
    unimodal_test: dict[str, str] = field(default_factory=dict)

    @property
    def n_fit(self) -> int:
        """Number of training cases the optimizer sees."""
        return len(self.train_ids) - self.n_val


@dataclass
class FoldInputs:
    """The model inputs read for the job: omics blocks and scaler, the open bag store."""

    omic_sizes: list[int]
    omic_input: str = "families"  # unique_genes: one block of each omics column once
    omics_blocks: list[np.ndarray] | None = None
    scaler: Standardizer | None = None
    store: BagStore | None = None
    encoder: str = "none"
    encoder_weights: str = "none"
    path_dim: int | None = None
    path_scaler: PathScaler | None = None  # path_norm zscore: the training patches' statistics
    # *_clinical models: the clinical covariates' encoding (training/clinical.py), whose block
    # follows the omics blocks in omics_blocks / omic_sizes
    clinical_stats: dict[str, Any] | None = None

    @property
    def bags(self) -> Mapping[str, np.ndarray] | None:
        """The bags as the model reads them: z-scored by `path_scaler` when there is one."""
        if self.store is None or self.path_scaler is None:
            return self.store
        return ScaledBags(self.store, self.path_scaler)


@dataclass(frozen=True)
class FoldData:
    """Bin edges (bins_fit_on's cases) and the fit, inner-validation and test datasets."""

    edges: np.ndarray
    ds_train: SurvivalDataset
    ds_val: SurvivalDataset | None
    ds_test: SurvivalDataset


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def resolve_device(device: str) -> torch.device:
    """'auto' → CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _lacking_modality(
    case_ids: list[str], need_path: bool, need_omic: bool, omics_parquet: str, bags_h5: str | None
) -> dict[str, str]:
    """Cases the model cannot use, with the reason (no omics row / no or an empty patch bag)."""
    lacking: dict[str, str] = {}
    if need_omic:
        have = set(pd.read_parquet(omics_parquet).index.astype(str))
        lacking.update({c: "no omics" for c in case_ids if c not in have})
    if need_path and bags_h5 is not None:
        with BagStore(bags_h5) as store:
            for c in case_ids:
                if c not in lacking and (c not in store or store.n_patches(c) == 0):
                    lacking[c] = "no patches"
    return lacking


def _inner_split(
    clinical: pd.DataFrame, train_ids: list[str], fraction: float, seed: int
) -> tuple[list[str], int]:
    """Reorder the training cases as inner-train + inner-validation; return them and n_val.

    The inner split is one fold of a stratified (event × time quartile) K-fold over the
    training cases with K = round(1 / fraction), from the training seed.
    """
    k = max(2, round(1 / fraction))
    if len(train_ids) < 2 * k:
        raise ValueError(
            f"model_selection inner_val: {len(train_ids)} training cases are too few for an "
            f"inner split of 1/{k}; use model_selection last_epoch"
        )
    inner = make_folds(clinical.loc[train_ids], n_folds=k, seed=seed)
    val = set(inner.loc[inner["fold"] == 0, "case_id"])
    return [c for c in train_ids if c not in val] + [c for c in train_ids if c in val], len(val)


def _exclude_lacking(
    job: FoldJob, train_ids: list[str], test_ids: list[str]
) -> tuple[list[str], list[str], dict[str, str]]:
    """missing_modality exclude: drop the cases the model cannot use, and name them."""
    excluded = _lacking_modality(
        train_ids + test_ids, job.need_path, job.need_omic, job.omics_parquet, job.bags_h5
    )
    if excluded:
        log.warning(
            "%s %s fold %d: %d case(s) without the model's modalities are left out "
            "(missing_policy keep_unimodal): %s",
            job.cohort, job.model_name, job.fold, len(excluded), sorted(excluded)[:20],
        )  # fmt: skip
        train_ids = [c for c in train_ids if c not in excluded]
        test_ids = [c for c in test_ids if c not in excluded]
    if not test_ids:
        raise ValueError(
            f"{job.splits_tsv}: fold {job.fold} has no case that model {job.model_name!r} can "
            f"use (it needs {sorted(job.modalities)})"
        )
    return train_ids, test_ids, excluded


def select_cases(job: FoldJob, clinical: pd.DataFrame) -> FoldCases:
    """Split the cases into training (inner validation last) and the held-out fold."""
    fold = job.fold
    splits = read_splits(job.splits_tsv)
    if fold not in set(splits["fold"]):
        raise ValueError(
            f"{job.splits_tsv}: fold {fold} not present (folds {sorted(set(splits.fold))})"
        )
    no_label = [c for c in splits["case_id"] if c not in clinical.index]
    if no_label:
        raise ValueError(f"{job.clinical_tsv}: no survival data for split cases {no_label[:20]}")
    train_ids = splits.loc[splits["fold"] != fold, "case_id"].tolist()
    test_ids = splits.loc[splits["fold"] == fold, "case_id"].tolist()
    excluded: dict[str, str] = {}
    unimodal: dict[str, str] = {}
    if job.p["missing_modality"] == "exclude":
        held_out = list(test_ids)
        train_ids, test_ids, excluded = _exclude_lacking(job, train_ids, test_ids)
        unimodal = _unimodal_test(job, [c for c in held_out if c in excluded], excluded)
    if not train_ids:
        raise ValueError(f"{job.splits_tsv}: no training cases outside fold {fold}")
    n_val = 0
    if job.p["model_selection"] == "inner_val":
        train_ids, n_val = _inner_split(clinical, train_ids, job.p["inner_val_fraction"], job.seed)
    return FoldCases(
        train_ids=train_ids,
        test_ids=test_ids,
        n_val=n_val,
        excluded=excluded,
        unimodal_test=unimodal,
    )


def _unimodal_test(job: FoldJob, lacking: list[str], excluded: dict[str, str]) -> dict[str, str]:
    """Held-out cases a multimodal model scores with one modality withheld: case -> withheld.

    A case without omics needs a non-empty bag (and vice versa); one without both stays out.
    """
    if not {"path", "omic"} <= job.modalities or not lacking:
        return {}
    out: dict[str, str] = {}
    no_omics = [c for c in lacking if excluded[c] == "no omics"]
    # *_clinical models: withheld omics would withhold the clinical block too; not scored
    if no_omics and job.bags_h5 is not None and "clinical" not in job.modalities:
        with BagStore(job.bags_h5) as store:
            out.update({c: "omic" for c in no_omics if c in store and store.n_patches(c) > 0})
    out.update({c: "path" for c in lacking if excluded[c] == "no patches"})
    if out:
        log.warning(
            "%s %s fold %d: %d held-out case(s) lacking one modality are scored with it "
            "withheld (missing_policy keep_unimodal; column modalities_used): %s",
            job.cohort, job.model_name, job.fold, len(out), dict(sorted(out.items())[:20]),
        )  # fmt: skip
    return dict(sorted(out.items()))


def omics_blocks_for(job: FoldJob, inputs: FoldInputs, case_ids: list[str]) -> list[np.ndarray]:
    """Standardised omics blocks of `case_ids` in the job's layout, with the fitted scaler."""
    if inputs.scaler is None:
        raise ValueError("omics_blocks_for: the job read no omics (no fitted scaler)")
    families = read_families_json(job.families_json)
    table = pd.read_parquet(job.omics_parquet)
    table.index = table.index.astype(str)
    z = inputs.scaler.transform(table.loc[case_ids])
    if inputs.omic_input == "unique_genes":
        blocks = [z.to_numpy(dtype=np.float32)]
    else:
        blocks = [z[cols].to_numpy(dtype=np.float32) for cols in families.values()]
    if inputs.clinical_stats is not None:
        blocks.append(clinical_block(job, inputs.clinical_stats, case_ids))
    return blocks


def clinical_block(
    job: FoldJob,
    stats: dict[str, Any],
    case_ids: list[str],
    clinical: pd.DataFrame | None = None,
) -> np.ndarray:
    """The encoded clinical covariates of `case_ids` (float32), the *_clinical models' block.

    `clinical`: the job's clinical table when the caller has read it already.
    """
    if not job.clinical_tsv:
        raise ValueError(f"model {job.model_name!r} reads clinical covariates: no clinical table")
    table = read_clinical(job.clinical_tsv) if clinical is None else clinical
    return encode_clinical(
        table, case_ids, stats, clinical_tsv=job.clinical_tsv, model=job.model_name
    ).to_numpy(dtype=np.float32)


def _add_clinical(job: FoldJob, cases: FoldCases, inputs: FoldInputs) -> None:
    """Fit the covariates' encoding on the training cases; append its block to the omics."""
    covariates = list(job.p["clinical_covariates"])
    clinical = read_clinical(job.clinical_tsv)
    fit = fit_clinical(
        clinical, cases.train_ids, cases.test_ids, covariates,
        clinical_tsv=job.clinical_tsv, model=job.model_name,
    )  # fmt: skip
    inputs.clinical_stats = fit.stats
    # the block goes through the stored-statistics encoder, as heatmaps and attribution
    # rebuild it, rather than from fit.train / fit.test (a test checks they agree)
    block = clinical_block(job, fit.stats, cases.train_ids + cases.test_ids, clinical)
    inputs.omics_blocks = [*(inputs.omics_blocks or []), block]
    inputs.omic_sizes = [*inputs.omic_sizes, block.shape[1]]
    log.info(
        "clinical covariates %s: one more omics block of %d columns %s",
        covariates, block.shape[1], list(fit.train.columns),
    )  # fmt: skip


def _log_imputed(frame: pd.DataFrame, omics_parquet: str) -> None:
    """Log the job's missing omics cells, per case and per column (bags.omics_impute mean)."""
    by_case, by_col = missing_counts(frame)
    if by_case:
        log.warning(
            "%s: %d missing omics value(s) imputed with the training-fold mean "
            "(bags.omics_impute mean); per case %s; per column %s",
            omics_parquet, sum(by_case.values()), dict(list(by_case.items())[:20]),
            dict(list(by_col.items())[:20]),
        )  # fmt: skip


def _load_omics(
    omics_parquet: str,
    families: dict[str, list[str]],
    case_ids: list[str],
    train_ids: list[str],
    unique: bool = False,
) -> tuple[list[np.ndarray], Standardizer]:
    """Standardise the family columns with training statistics; return per-family blocks.

    unique: one block instead, each column once (first occurrence, in family order).
    """
    table = pd.read_parquet(omics_parquet)
    table.index = table.index.astype(str)
    absent = [c for c in case_ids if c not in table.index]
    if absent:
        raise ValueError(f"{omics_parquet}: no omics for cases {absent[:20]} (model needs omics)")
    columns = list(dict.fromkeys(c for cols in families.values() for c in cols))
    missing_cols = [c for c in columns if c not in table.columns]
    if missing_cols:
        raise ValueError(f"{omics_parquet}: family columns missing: {missing_cols[:20]}")
    _log_imputed(table.loc[case_ids, columns], omics_parquet)
    scaler = Standardizer().fit(table.loc[train_ids, columns])
    z = scaler.transform(table.loc[case_ids, columns])
    if unique:
        return [z[columns].to_numpy(dtype=np.float32)], scaler
    return [z[cols].to_numpy(dtype=np.float32) for cols in families.values()], scaler


def _omic_input(job: FoldJob, families: dict[str, list[str]]) -> str:
    """The omics layout the model gets: unique_genes only for models on the concatenated vector."""
    if job.p["omic_input"] != "unique_genes" or not job.need_omic:
        return "families"
    if not getattr(model_class(job.model_name), "concat_omics", False):
        log.info(
            "omic_input unique_genes: %s keeps one block per gene family (it does not "
            "concatenate them)", job.model_name,
        )  # fmt: skip
        return "families"
    n_unique = len({c for cols in families.values() for c in cols})
    n_cat = sum(len(cols) for cols in families.values())
    log.info("omic_input unique_genes: %d unique omics columns (families: %d)", n_unique, n_cat)
    return "unique_genes"


def load_inputs(
    job: FoldJob, cases: FoldCases, path_scaler: PathScaler | None = None
) -> FoldInputs:
    """Read the omics (standardised on the training cases) and open the bags the model reads.

    Under path_norm zscore the patch statistics are fitted on the training cases' bags, or
    taken from `path_scaler` (a trained fold's checkpoint). The caller closes `store` (it is
    open only when the model reads pathology).
    """
    families = read_families_json(job.families_json)
    inputs = FoldInputs(omic_sizes=[len(cols) for cols in families.values()])
    inputs.omic_input = _omic_input(job, families)
    if inputs.omic_input == "unique_genes":
        inputs.omic_sizes = [len({c for cols in families.values() for c in cols})]
    if job.need_omic:
        inputs.omics_blocks, inputs.scaler = _load_omics(
            job.omics_parquet,
            families,
            cases.train_ids + cases.test_ids,
            cases.train_ids,
            unique=inputs.omic_input == "unique_genes",
        )
    if "clinical" in job.modalities:
        _add_clinical(job, cases, inputs)
    if job.need_path:
        if job.bags_h5 is None:
            raise ValueError(f"model {job.model_name!r} needs pathology but bags_h5 is None")
        attrs = bag_attrs(job.bags_h5)
        inputs.encoder = str(attrs.get("encoder", "unknown"))
        inputs.encoder_weights = str(attrs.get("weights", "unknown"))
        inputs.path_dim = int(attrs["feature_dim"]) if "feature_dim" in attrs else None
        inputs.store = BagStore(job.bags_h5)
        # .get: the checkpoints of jobs from before path_norm hold no key and read raw features
        if job.p.get("path_norm", "none") == "zscore":
            try:
                inputs.path_scaler = path_scaler or _fit_path_scaler(job, inputs.store, cases)
            except Exception:
                inputs.store.close()
                raise
    return inputs


def _fit_path_scaler(job: FoldJob, store: BagStore, cases: FoldCases) -> PathScaler:
    """The patch statistics of the training cases' bags (inner-validation ones included)."""
    check_bags(store, cases.train_ids, str(job.bags_h5))
    scaler = PathScaler.fit(store, cases.train_ids)
    log.info(
        "path_norm zscore: patch statistics from %d patches of %d training cases",
        scaler.n_patches, len(cases.train_ids),
    )  # fmt: skip
    return scaler


def check_bags(store: BagStore, case_ids: list[str], bags_h5: str) -> None:
    """Every case must have a non-empty bag when the model reads pathology."""
    absent = [c for c in case_ids if c not in store]
    if absent:
        raise ValueError(f"{bags_h5}: no patch bag for cases {absent[:20]} (model needs pathology)")
    empty = [c for c in case_ids if store.n_patches(c) == 0]
    if empty:
        raise ValueError(f"{bags_h5}: cases with 0 patches {empty[:20]} (model needs pathology)")


def build_datasets(
    p: dict[str, Any], clinical: pd.DataFrame, cases: FoldCases, inputs: FoldInputs
) -> FoldData:
    """Bin the times (bins_fit_on's cases) and build the fit, inner-validation and test sets."""
    train_ids, test_ids = cases.train_ids, cases.test_ids
    n_train = len(train_ids)
    times = clinical.loc[train_ids + test_ids, "survival_months"].to_numpy(dtype=float)
    events = clinical.loc[train_ids + test_ids, "event"].to_numpy(dtype=bool)
    if p["bins_fit_on"] == "all":
        # MCAT fits the bins on all patients, held-out fold included.
        log.warning(
            "bins_fit_on all: the bin edges use the held-out cases' survival times (leaks test "
            "times into the bin edges; MCAT's protocol)"
        )
        edges = time_bin_edges(times, events, p["n_bins"])
    else:
        # Bins from the training cases only (MCAT fits them on all patients: a test-fold leak).
        edges = time_bin_edges(times[:n_train], events[:n_train], p["n_bins"])
    labels = discretize(times, edges)
    blocks = inputs.omics_blocks

    def dataset(sl: slice, ids: list[str], training: bool) -> SurvivalDataset:
        return SurvivalDataset(
            ids,
            labels=labels[sl],
            events=events[sl],
            times=times[sl],
            bags=inputs.store,  # raw; z-scored (path_norm) after max_patches sampling
            omics=None if blocks is None else [b[sl] for b in blocks],
            training=training,
            max_patches=p["max_patches"],
            path_transform=None if inputs.path_scaler is None else inputs.path_scaler.transform,
        )

    n_fit = cases.n_fit
    return FoldData(
        edges=edges,
        ds_train=dataset(slice(0, n_fit), train_ids[:n_fit], True),
        ds_val=dataset(slice(n_fit, n_train), train_ids[n_fit:], False) if cases.n_val else None,
        ds_test=dataset(slice(n_train, None), test_ids, False),
    )


def build_model(job: FoldJob, inputs: FoldInputs) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Create the model on the job's device; return it and the keyword arguments it got."""
    p, path_dim = job.p, inputs.path_dim
    kwargs: dict[str, Any] = {"n_bins": p["n_bins"], "omic_sizes": inputs.omic_sizes}
    if path_dim is not None:
        kwargs["path_dim"] = path_dim
    if "lambda_sim" in inspect.signature(model_class(job.model_name)).parameters:
        kwargs["lambda_sim"] = p["lambda_sim"]
    user_kwargs = p["model_kwargs"]
    if path_dim is not None and "path_dim" in user_kwargs and user_kwargs["path_dim"] != path_dim:
        raise ValueError(
            f"model_kwargs.path_dim={user_kwargs['path_dim']} but the bags have dim {path_dim}"
        )
    kwargs.update(user_kwargs)
    return create_model(job.model_name, **kwargs).to(job.dev), kwargs


class Adam:
    """torch.optim.Adam's update with its own state, without torch.optim.Optimizer's overhead.

    Every torch.optim.Optimizer method (constructor included) imports torch._dynamo on its
    first call, ~2 CPU-s of start-up in every job that never compiles anything. This class
    keeps Adam's per-parameter state (the moments and step count, placed as torch.optim.Adam
    places them) and calls the public functional ``torch.optim.adam.adam`` with the arguments
    ``torch.optim.Adam.step`` passes it: the weights equal torch.optim.Adam's with the same
    ``fused`` to the bit (tests/test_training_loop.py).
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        *,
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        fused: bool = False,
    ) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        if lr < 0 or weight_decay < 0 or eps < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(
                f"Adam: need lr, weight_decay, eps >= 0 and betas in [0, 1); got lr={lr}, "
                f"weight_decay={weight_decay}, eps={eps}, betas={betas}"
            )
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.fused = fused
        # parameter -> (exp_avg, exp_avg_sq, step), created at its first step with a gradient
        self.state: dict[torch.nn.Parameter, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def zero_grad(self) -> None:
        """Drop the gradients (set to None, torch.optim's default)."""
        for q in self.params:
            q.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        for q in self.params:
            if q.grad is None:
                continue
            if q.grad.is_sparse:
                raise RuntimeError("Adam does not support sparse gradients")
            if q not in self.state:
                # torch.optim.Adam's: moments like the parameter; the step count on the CPU
                # (float64 under a float64 default dtype), or float32 on its device if fused
                float64 = torch.get_default_dtype() == torch.float64 and not self.fused
                step = torch.zeros(
                    (),
                    dtype=torch.float64 if float64 else torch.float32,
                    device=q.device if self.fused else "cpu",
                )
                zeros = [torch.zeros_like(q, memory_format=torch.preserve_format) for _ in "ms"]
                self.state[q] = (zeros[0], zeros[1], step)
            m, v, step = self.state[q]
            params.append(q)
            grads.append(q.grad)
            exp_avgs.append(m)
            exp_avg_sqs.append(v)
            steps.append(step)
        if not params:
            return
        adam_update(
            params, grads, exp_avgs, exp_avg_sqs, [], steps,
            has_complex=any(torch.is_complex(q) for q in params),
            amsgrad=False, beta1=self.betas[0], beta2=self.betas[1], lr=self.lr,
            weight_decay=self.weight_decay, eps=self.eps, maximize=False,
            fused=self.fused or None,
        )  # fmt: skip


def make_optimizer(model: torch.nn.Module, p: dict[str, Any]) -> Adam:
    """Adam over the trainable parameters, with the params' lr and weight decay.

    Fused (one kernel per tensor) where torch has the kernel: on a CPU ~4x faster per step
    than the per-parameter loop for these 1-5M-parameter models. The same update up to float
    rounding, which training can amplify (dualtrans risks moved by up to 0.15 on a demo fold);
    the held-out c-index was unchanged (benchmarks/results/demo_time.md).
    """
    params = [q for q in model.parameters() if q.requires_grad]
    fused = all(q.device.type in ("cpu", "cuda") and q.is_floating_point() for q in params)
    return Adam(params, lr=p["lr"], weight_decay=p["weight_decay"], fused=fused)
