"""Scoring with a modality missing: predictions_missing.parquet and keep_unimodal test cases.

Every train job writes ``predictions_missing.parquet`` next to predictions.parquet: its rows
with ``withheld`` ``none`` are predictions.parquet's rows (the same risks); a multimodal model
adds the held-out cases scored again with the pathology withheld (``withheld`` path) and with
the genomics withheld (``withheld`` omic; not for the *_clinical models, whose clinical block
travels with the omics and would be withheld too). ``modalities_used`` says which inputs
each scoring read ('path+omic', 'path', 'omic'; 'clinical' for cox_clinical; '+clinical' for
the *_clinical models), and the evaluation's missing-modality table has one column per value
of it. Under missing_policy keep_unimodal a
multimodal model also scores the held-out cases that lack one modality (FoldCases.unimodal_test)
with that modality withheld; they join predictions.parquet with their modalities_used.
"""

from __future__ import annotations

import copy
import dataclasses
import logging

import pandas as pd
import torch

from mmsurv.training.dataset import SurvivalDataset, discretize
from mmsurv.training.loop import StepConfig, predict_fold
from mmsurv.training.modality import is_multimodal, modalities_used
from mmsurv.training.outputs import prediction_table
from mmsurv.training.setup import FoldCases, FoldData, FoldInputs, FoldJob, omics_blocks_for

log = logging.getLogger("mmsurv.training.train")

__all__ = ["missing_predictions", "tag_scoring", "unimodal_test_predictions"]


def tag_scoring(pred: pd.DataFrame, modalities: frozenset[str], withheld: str) -> pd.DataFrame:
    """``pred`` with ``withheld`` and (unless it has one) ``modalities_used`` columns."""
    out = pred.assign(withheld=withheld)
    if "modalities_used" not in out.columns:
        out["modalities_used"] = modalities_used(
            modalities, None if withheld == "none" else withheld
        )
    return out


def _without(ds: SurvivalDataset, which: str) -> SurvivalDataset:
    """A shallow copy of ``ds`` that yields no bag (which='path') or no omics (which='omic')."""
    out = copy.copy(ds)
    if which == "path":
        out.bags = None
    else:
        out.omics = None
    return out


def _score(
    job: FoldJob,
    model: torch.nn.Module,
    ds: SurvivalDataset,
    cfg: StepConfig,
    which: str,
    encoder_weights: str,
    fallbacks: list[str],
) -> pd.DataFrame:
    """prediction_table rows of ``ds`` scored with modality ``which`` withheld."""
    step = dataclasses.replace(
        cfg,
        need_path=cfg.need_path and which != "path",
        need_omic=cfg.need_omic and which != "omic",
    )
    haz, sv = predict_fold(model, _without(ds, which), step, job.p["n_bins"], fallbacks)
    pred = prediction_table(
        job, ds.case_ids, times=ds.times, events=ds.events, haz=haz, sv=sv,
        risk=-sv.sum(axis=1), model_selection=job.p["model_selection"],
        encoder_weights=encoder_weights,
    )  # fmt: skip
    pred["modalities_used"] = modalities_used(job.modalities, which)
    return pred


def missing_predictions(
    job: FoldJob,
    data: FoldData,
    inputs: FoldInputs,
    model: torch.nn.Module,
    cfg: StepConfig,
    pred: pd.DataFrame,
    fallbacks: list[str],
) -> pd.DataFrame:
    """predictions_missing.parquet: ``pred`` as withheld none, then (multimodal) path and omic."""
    frames = [tag_scoring(pred, job.modalities, "none")]
    if is_multimodal(job.modalities):
        for which in ("path", "omic"):
            if which == "omic" and "clinical" in job.modalities:
                log.info(
                    "%s: no scoring with the genomics withheld (its clinical covariates ride in "
                    "the omics input and would be withheld with them)", job.model_name,
                )  # fmt: skip
                continue
            scored = _score(job, model, data.ds_test, cfg, which, inputs.encoder_weights, fallbacks)
            frames.append(scored.assign(withheld=which))
    return pd.concat(frames, ignore_index=True)


def unimodal_test_predictions(
    job: FoldJob,
    cases: FoldCases,
    data: FoldData,
    inputs: FoldInputs,
    model: torch.nn.Module,
    cfg: StepConfig,
    clinical: pd.DataFrame,
    fallbacks: list[str],
) -> pd.DataFrame | None:
    """keep_unimodal: the held-out cases lacking one modality, scored with it withheld."""
    frames = []
    for which in ("path", "omic"):
        ids = [c for c, w in cases.unimodal_test.items() if w == which]
        if not ids:
            continue
        times = clinical.loc[ids, "survival_months"].to_numpy(dtype=float)
        events = clinical.loc[ids, "event"].to_numpy(dtype=bool)
        bags = inputs.bags if which == "omic" else None
        omics = omics_blocks_for(job, inputs, ids) if which == "path" else None
        ds = SurvivalDataset(
            ids, labels=discretize(times, data.edges), events=events, times=times, bags=bags,
            omics=omics,
        )  # fmt: skip
        frames.append(_score(job, model, ds, cfg, which, inputs.encoder_weights, fallbacks))
    if not frames:
        return None
    out = pd.concat(frames, ignore_index=True)
    log.info(
        "%s %s fold %d: %d held-out case(s) scored with one modality withheld: %s",
        job.cohort, job.model_name, job.fold, len(out),
        out["modalities_used"].value_counts().to_dict(),
    )  # fmt: skip
    return out
