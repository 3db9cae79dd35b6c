"""Train one cohort × model × fold end to end and write its predictions, checkpoint and logs."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmsurv.bags.data import read_clinical
from mmsurv.model_catalog import is_linear_floor
from mmsurv.models import model_modalities
from mmsurv.training.dataset import eval_dataset, make_weighted_sampler
from mmsurv.training.loop import (
    StepConfig,
    cindex,
    fit_epochs,
    l1_parameters,
    predict_fold,
    select_weights,
)
from mmsurv.training.outputs import (
    fold_meta,
    fold_summary,
    predictions_frame,
    train_risk_table,
    write_outputs,
)
from mmsurv.training.params import DEFAULT_PARAMS, LEAKY_SELECTION, resolve_params
from mmsurv.training.setup import (
    FoldCases,
    FoldData,
    FoldInputs,
    FoldJob,
    build_datasets,
    build_model,
    check_bags,
    load_inputs,
    make_optimizer,
    resolve_device,
    seed_everything,
    select_cases,
)

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_PARAMS", "resolve_params", "train_fold"]


def train_fold(
    *,
    cohort: str,
    model_name: str,
    fold: int,
    bags_h5: str | None,
    omics_parquet: str,
    families_json: str,
    clinical_tsv: str,
    splits_tsv: str,
    out_dir: str,
    params: Mapping[str, Any],
    seed: int,
    device: str = "auto",
) -> dict[str, Any]:
    """Train on folds != `fold`, predict fold `fold`, write the fold's outputs; return a summary.

    Linear floors (model_catalog.LINEAR_FLOORS) are fitted by `training.linear` instead of by
    epochs; their outputs have the same files and columns.
    """
    if "seed" in params and int(params["seed"]) != seed:
        raise ValueError(f"params.seed={params['seed']} differs from seed={seed}")
    p = resolve_params(params)
    if p["num_threads"]:
        torch.set_num_threads(int(p["num_threads"]))
    dev = resolve_device(device)
    seed_everything(seed)
    job = FoldJob(
        cohort=cohort,
        model_name=model_name,
        fold=fold,
        seed=seed,
        dev=dev,
        out=Path(out_dir),
        p=p,
        modalities=frozenset(model_modalities(model_name)),  # unknown model → ValueError
        bags_h5=bags_h5,
        omics_parquet=omics_parquet,
        families_json=families_json,
        clinical_tsv=clinical_tsv,
        splits_tsv=splits_tsv,
    )
    job.out.mkdir(parents=True, exist_ok=True)
    if p["modality_dropout"] > 0 and not {"path", "omic"} <= job.modalities:
        log.info(
            "modality_dropout %s does nothing for %s (it does not read both pathology and "
            "genomics)", p["modality_dropout"], model_name,
        )  # fmt: skip
    clinical = read_clinical(clinical_tsv)
    if is_linear_floor(model_name):
        # Imported here: the floors' sklearn pipeline is start-up a deep model's job never uses.
        from mmsurv.training.linear import fit_linear_fold

        return fit_linear_fold(job, clinical)
    cases = select_cases(job, clinical)
    inputs = load_inputs(job, cases)
    try:
        if inputs.store is not None:
            check_bags(inputs.store, cases.train_ids + cases.test_ids, str(bags_h5))
        summary = _run(job, clinical, cases, inputs)
    finally:
        if inputs.store is not None:
            inputs.store.close()
    return summary


def _check_protocol(job: FoldJob, cases: FoldCases, model: torch.nn.Module) -> None:
    """Fail before the first epoch on an L1 scope or step rule that cannot train this job."""
    p = job.p
    if p["l1_reg"] > 0:
        l1_parameters(model, p["l1_scope"])  # l1_scope omic on a model without omics → error
    if not p["partial_step"] and cases.n_fit < p["grad_accum"]:
        raise ValueError(
            f"partial_step false with grad_accum={p['grad_accum']} > {cases.n_fit} training "
            "cases: the optimizer would never step; use partial_step true or a smaller grad_accum"
        )


def _missing_scorings(
    job: FoldJob,
    clinical: pd.DataFrame,
    cases: FoldCases,
    data: FoldData,
    inputs: FoldInputs,
    model: torch.nn.Module,
    cfg: StepConfig,
    pred: pd.DataFrame,
    fallbacks: list[str],
) -> pd.DataFrame:
    """predictions_missing's rows: keep_unimodal's held-out cases join the none scoring."""
    from mmsurv.training.missing import missing_predictions, unimodal_test_predictions

    missing = missing_predictions(job, data, inputs, model, cfg, pred, fallbacks)
    uni = unimodal_test_predictions(job, cases, data, inputs, model, cfg, clinical, fallbacks)
    if uni is None:
        return missing
    both = pd.concat([missing, uni.assign(withheld="none")], ignore_index=True)
    order = {"none": 0, "path": 1, "omic": 2}
    return both.sort_values("withheld", key=lambda w: w.map(order), kind="stable").reset_index(
        drop=True
    )


def _run(
    job: FoldJob, clinical: pd.DataFrame, cases: FoldCases, inputs: FoldInputs
) -> dict[str, Any]:
    """Build the datasets and model, train, predict the held-out fold and write the outputs."""
    p = job.p
    data = build_datasets(p, clinical, cases, inputs)
    model, model_kwargs = build_model(job, inputs)
    # Models with a label-dependent training term (CLAM's instance loss) take `label=` in
    # training; evaluation never passes it, so predictions cannot see the held-out labels.
    cfg = StepConfig(
        model_name=job.model_name,
        dev=job.dev,
        need_path=job.need_path,
        need_omic=job.need_omic,
        takes_label="label" in inspect.signature(model.forward).parameters,
        grad_accum=p["grad_accum"],
        l1_reg=p["l1_reg"],
        alpha_surv=p["alpha_surv"],
        l1_scaling=p["l1_scaling"],
        l1_scope=p["l1_scope"],
        partial_step=p["partial_step"],
        modality_dropout=p["modality_dropout"] if {"path", "omic"} <= job.modalities else 0.0,
        seed=job.seed,
    )
    _check_protocol(job, cases, model)
    optimizer = make_optimizer(model, p)
    ds_train = data.ds_train
    sampler = (
        make_weighted_sampler(ds_train.labels, ds_train.events) if p["weighted_sampling"] else None
    )
    log.info(
        "%s %s fold %d: %d train (%d of them inner validation) / %d test cases, bins %s, "
        "device %s, model selection %s",
        job.cohort, job.model_name, job.fold, len(cases.train_ids), cases.n_val,
        len(cases.test_ids), np.round(data.edges, 2).tolist(), job.dev, p["model_selection"],
    )  # fmt: skip

    fallbacks: list[str] = []  # cases scored on the CPU after a GPU out-of-memory
    # best_test_epoch_leaky (explicit, refused under any other name): scores the held-out
    # fold every epoch and keeps the best one; the outputs record the last epoch's beside it.
    leaky = data.ds_test if p["model_selection"] == LEAKY_SELECTION else None
    fit = fit_epochs(
        model, optimizer, sampler, ds_train, data.ds_val, cfg, p["epochs"], fallbacks, leaky
    )
    # Prediction on the held-out fold with the weights model_selection chose.
    selected_epoch = select_weights(model, fit, p["epochs"])
    haz, sv = predict_fold(model, data.ds_test, cfg, p["n_bins"], fallbacks)
    pred = predictions_frame(job, cases, data, inputs, haz, sv)
    pred_missing = _missing_scorings(
        job, clinical, cases, data, inputs, model, cfg, pred, fallbacks
    )
    pred = pred_missing[pred_missing["withheld"] == "none"].drop(columns="withheld")
    if p["missing_modality"] != "exclude" or not {"path", "omic"} <= job.modalities:
        pred = pred.drop(columns="modalities_used")  # the column marks keep_unimodal scorings
    if fit.leaky is not None:  # the tables print the gap to the last epoch from this column
        last = (fit.leaky_summary() or {}).get("last_epoch_cindex")
        pred["last_epoch_cindex"] = np.nan if last is None else float(last)
    # The same weights score the training cases: the honest KM's per-fold cutpoints.
    ds_fit = eval_dataset(*(d for d in (data.ds_train, data.ds_val) if d is not None))
    haz_fit, sv_fit = predict_fold(model, ds_fit, cfg, p["n_bins"], fallbacks)
    train_pred = train_risk_table(
        job, cases, times=ds_fit.times, events=ds_fit.events, haz=haz_fit, sv=sv_fit,
        risk=-sv_fit.sum(axis=1), model_selection=p["model_selection"],
        encoder_weights=inputs.encoder_weights,
    )  # fmt: skip
    test_ci = cindex(
        pred["event"].to_numpy(dtype=bool),
        pred["survival_months"].to_numpy(dtype=float),
        pred["risk"].to_numpy(),
    )
    meta = fold_meta(
        job,
        cases,
        data,
        inputs,
        model_kwargs=model_kwargs,
        fit=fit,
        selected_epoch=selected_epoch,
        fallbacks=fallbacks,
        test_ci=test_ci,
    )
    if fit.leaky is not None:
        pred_missing["last_epoch_cindex"] = pred["last_epoch_cindex"].iloc[0]
    write_outputs(job, pred, fit.history, model, meta, train_pred, pred_missing, inputs.path_scaler)
    log.info("%s %s fold %d: test c-index %.4f", job.cohort, job.model_name, job.fold, test_ci)
    return fold_summary(job, cases, fit, fallbacks, test_ci)
