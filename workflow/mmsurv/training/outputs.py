"""What a fold job writes: predictions.parquet, train_log.tsv, checkpoint.pt, meta.json."""

from __future__ import annotations

import json
import math
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import mmsurv
from mmsurv.io import atomic_path, json_default, write_text_atomic
from mmsurv.training.loop import Fit
from mmsurv.training.path_scaler import PathScaler
from mmsurv.training.setup import FoldCases, FoldData, FoldInputs, FoldJob

__all__ = [
    "checkpoint_path_scaler",
    "fold_meta",
    "fold_summary",
    "summary_row",
    "package_versions",
    "prediction_table",
    "predictions_frame",
    "train_risk_table",
    "write_outputs",
    "write_predictions_missing",
]


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine the results."""
    out = {"python": platform.python_version(), "mmsurv": mmsurv.__version__}
    for pkg in ("torch", "numpy", "pandas", "pot", "scikit-survival", "h5py"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def predictions_frame(
    job: FoldJob,
    cases: FoldCases,
    data: FoldData,
    inputs: FoldInputs,
    haz: np.ndarray,
    sv: np.ndarray,
) -> pd.DataFrame:
    """The held-out fold's predictions table (the contract the evaluation stage reads)."""
    return prediction_table(
        job,
        cases.test_ids,
        times=data.ds_test.times,
        events=data.ds_test.events,
        haz=haz,
        sv=sv,
        risk=-sv.sum(axis=1),
        model_selection=job.p["model_selection"],
        encoder_weights=inputs.encoder_weights,
    )


def prediction_table(
    job: FoldJob,
    test_ids: list[str],
    *,
    times: np.ndarray,
    events: np.ndarray,
    haz: np.ndarray,
    sv: np.ndarray,
    risk: np.ndarray,
    model_selection: str,
    encoder_weights: str,
) -> pd.DataFrame:
    """predictions.parquet's columns for any model: risk (higher = worse), hazard_j, surv_j."""
    n_bins = job.p["n_bins"]
    pred = pd.DataFrame({"case_id": test_ids, "fold": job.fold, "seed": job.seed, "risk": risk})
    for j in range(n_bins):
        pred[f"hazard_{j}"] = haz[:, j]
    for j in range(n_bins):
        pred[f"surv_{j}"] = sv[:, j]
    test_events = np.asarray(events, dtype=bool)
    pred["survival_months"] = times
    pred["event"] = test_events
    pred["censorship"] = (~test_events).astype(np.int64)  # MCAT's convention, I/O only
    pred["model"] = job.model_name
    pred["cohort"] = job.cohort
    pred["model_selection"] = model_selection
    pred["encoder_weights"] = encoder_weights
    return pred


def train_risk_table(job: FoldJob, cases: FoldCases, **columns: Any) -> pd.DataFrame:
    """train_risks.parquet: predictions.parquet's columns for the fold's training cases, scored
    by the same final model, plus ``inner_val`` (the case only chose the epoch).

    The honest KM learns each fold's cutpoint on these risks, never on the held-out ones.
    ``columns``: prediction_table's keyword arguments, rows in ``cases.train_ids`` order.
    """
    table = prediction_table(job, cases.train_ids, **columns)
    table["inner_val"] = np.arange(len(table)) >= cases.n_fit  # inner-validation cases are last
    return table


def fold_meta(
    job: FoldJob,
    cases: FoldCases,
    data: FoldData,
    inputs: FoldInputs,
    *,
    model_kwargs: dict[str, Any],
    fit: Fit,
    selected_epoch: int,
    fallbacks: list[str],
    test_ci: float,
) -> dict[str, Any]:
    """meta.json: what was trained on what, how, with which result and package versions."""
    p = job.p
    return {
        "cohort": job.cohort,
        "model": job.model_name,
        "fold": job.fold,
        "seed": job.seed,
        "device": str(job.dev),
        "params": p,
        "model_kwargs_resolved": model_kwargs,
        "bin_edges": data.edges.tolist(),
        "bins_fit_on": p["bins_fit_on"],  # all: the held-out fold's times shaped the edges
        "omic_input": inputs.omic_input,  # the layout the model got (see params.omic_input)
        "n_train": len(cases.train_ids),
        "n_test": len(cases.test_ids),
        "train_case_ids": cases.train_ids,
        "test_case_ids": cases.test_ids,
        "encoder": inputs.encoder,
        "encoder_weights": inputs.encoder_weights,
        # zscore: the statistics (checkpoint.pt's path_scaler) of this many training patches
        "path_norm": p["path_norm"] if inputs.store is not None else None,
        "path_norm_patches": None if inputs.path_scaler is None else inputs.path_scaler.n_patches,
        "model_selection": p["model_selection"],
        "selected_epoch": selected_epoch,
        # best_test_epoch_leaky: the held-out c-index of the selected and of the last epoch
        # and their gap (selected - last); None under any selection that is not leaky
        "leaky": fit.leaky_summary(),
        "inner_val_case_ids": cases.train_ids[cases.n_fit :],
        "epochs_trained": p["epochs"],
        "train_seconds": fit.train_seconds,
        "eval_cpu_fallback_cases": sorted(set(fallbacks)),
        "missing_modality": p["missing_modality"],
        "excluded_cases": dict(sorted(cases.excluded.items())),
        # keep_unimodal: held-out cases lacking one modality, scored with it withheld
        "unimodal_test_cases": dict(cases.unimodal_test),
        "modality_dropout": p["modality_dropout"],
        "test_cindex": None if math.isnan(test_ci) else test_ci,
        "standardizer": None if inputs.scaler is None else inputs.scaler.to_dict(),
        # *_clinical models: the clinical covariates' encoding (training/clinical.py)
        "clinical": inputs.clinical_stats,
        "versions": package_versions(),
    }


def write_outputs(
    job: FoldJob,
    pred: pd.DataFrame,
    history: list[dict[str, float]],
    model: torch.nn.Module,
    meta: dict[str, Any],
    train_pred: pd.DataFrame | None = None,
    pred_missing: pd.DataFrame | None = None,
    path_scaler: PathScaler | None = None,
) -> None:
    """Write the fold's output files (train_risks.parquet when `train_pred`), each atomically.

    predictions_missing.parquet: `pred_missing`, else `pred` as the one scoring (withheld none).
    checkpoint.pt holds `path_scaler`'s statistics (path_norm zscore) beside the weights.
    """
    out = job.out
    with atomic_path(out / "predictions.parquet") as tmp:
        pred.to_parquet(tmp, engine="pyarrow", index=False)
    write_predictions_missing(job, pred, pred_missing)
    if train_pred is not None:
        with atomic_path(out / "train_risks.parquet") as tmp:
            train_pred.to_parquet(tmp, engine="pyarrow", index=False)
    with atomic_path(out / "train_log.tsv") as tmp:
        pd.DataFrame(history).to_csv(tmp, sep="\t", index=False)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(out / "checkpoint.pt") as tmp:
        ckpt = {"model_name": job.model_name, "state_dict": state, "meta": meta}
        if path_scaler is not None:
            ckpt["path_scaler"] = path_scaler.state()
        torch.save(ckpt, tmp)
    write_text_atomic(out / "meta.json", json.dumps(meta, indent=2, default=json_default))


def read_checkpoint(checkpoint: str | os.PathLike[str], model_name: str) -> dict[str, Any]:
    """A deep model's checkpoint.pt as write_outputs saves it, checked to hold `model_name`."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path} (rule train writes it for model {model_name!r}; "
            "run training first)"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "meta" not in ckpt or "state_dict" not in ckpt:
        kind = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path}: not a deep model checkpoint (kind {kind!r})")
    if ckpt.get("model_name") != model_name:
        raise ValueError(
            f"{path}: checkpoint of model {ckpt.get('model_name')!r}, not {model_name!r}"
        )
    return ckpt


def checkpoint_path_scaler(ckpt: dict[str, Any], where: str) -> PathScaler | None:
    """The patch statistics a checkpoint's model was trained on; None for raw features."""
    if (ckpt["meta"].get("path_norm") or "none") == "none":
        return None  # path_norm none, a model without pathology, or a pre-path_norm checkpoint
    if "path_scaler" not in ckpt:
        raise ValueError(f"{where}: path_norm {ckpt['meta']['path_norm']!r} but no path_scaler")
    return PathScaler.from_state(ckpt["path_scaler"], where)


def write_predictions_missing(
    job: FoldJob, pred: pd.DataFrame, pred_missing: pd.DataFrame | None = None
) -> None:
    """predictions_missing.parquet (training/missing.py): `pred_missing`, or `pred` tagged as
    the model's one scoring (withheld none; unimodal models and linear floors)."""
    if pred_missing is None:
        from mmsurv.training.modality import modalities_used

        pred_missing = pred.assign(withheld="none")
        if "modalities_used" not in pred_missing.columns:
            pred_missing["modalities_used"] = modalities_used(job.modalities, None)
    with atomic_path(job.out / "predictions_missing.parquet") as tmp:
        pred_missing.to_parquet(tmp, engine="pyarrow", index=False)


def fold_summary(
    job: FoldJob, cases: FoldCases, fit: Fit, fallbacks: list[str], test_ci: float
) -> dict[str, Any]:
    """The summary train_fold returns (one row of a run overview)."""
    return summary_row(
        job,
        cases,
        test_ci,
        final_loss=fit.history[-1]["loss"] if fit.history else math.nan,
        train_seconds=fit.train_seconds,
        fallbacks=fallbacks,
    )


def summary_row(
    job: FoldJob,
    cases: FoldCases,
    test_ci: float,
    *,
    final_loss: float,
    train_seconds: float,
    fallbacks: list[str],
) -> dict[str, Any]:
    """One row of a run overview, for deep models and linear floors alike."""
    return {
        "cohort": job.cohort,
        "model": job.model_name,
        "fold": job.fold,
        "seed": job.seed,
        "test_cindex": test_ci,
        "n_train": len(cases.train_ids),
        "n_test": len(cases.test_ids),
        "final_loss": final_loss,
        "train_seconds": train_seconds,
        "eval_cpu_fallback_cases": sorted(set(fallbacks)),
        "out_dir": str(job.out),
    }
