"""Linear floors: fit one scikit-survival Cox model per fold job and write the fold's outputs.

`train_fold` hands the floors (models/coxnet_omic.py, coxnet_path.py, cox_clinical.py) to
`fit_linear_fold`. Features are built with the training cases' statistics only; Coxnet's alpha
is chosen by an inner cross-validation over the training cases (folds stratified by event,
seeded with the job's seed, c-index on each inner validation fold), as scikit-survival's Coxnet
user guide does: the path is fitted once for the alpha grid, then each alpha is scored on the
inner folds (`fit_coxnet`). The held-out fold is scored once, after the fit, and never takes
part in a choice.

Outputs (same files and columns as the deep models): `risk` is the linear predictor (log
partial hazard, higher = worse); `surv_j` is S(t | x) = S0(t)^exp(risk) at the end of time
bin j (the Breslow baseline of the fitted model); `hazard_j` = 1 - surv_j / surv_{j-1}.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import RepeatedStratifiedKFold
from sksurv.util import Surv

from mmsurv.bags.data import BagStore, bag_attrs
from mmsurv.bags.omics import Standardizer, read_families_json
from mmsurv.io import atomic_path, json_default, write_text_atomic
from mmsurv.models import LinearFloor, create_floor
from mmsurv.training.clinical import CATEGORICAL_COVARIATES, fit_clinical
from mmsurv.training.dataset import time_bin_edges
from mmsurv.training.loop import cindex
from mmsurv.training.outputs import (
    package_versions,
    prediction_table,
    summary_row,
    train_risk_table,
    write_predictions_missing,
)
from mmsurv.training.setup import FoldCases, FoldJob, _load_omics, check_bags, select_cases

log = logging.getLogger("mmsurv.training.train")

__all__ = [
    "CATEGORICAL_COVARIATES",
    "FloorFit",
    "FloorInputs",
    "clinical_inputs",
    "fit_coxnet",
    "fit_linear_fold",
    "fit_ridge",
    "floor_inputs",
    "mean_pooled_bags",
    "Breslow",
]


@dataclass
class FloorInputs:
    """The floor's feature matrices (training and held-out cases) and how they were built."""

    train: pd.DataFrame
    test: pd.DataFrame
    preprocess: dict[str, Any]  # training-fold statistics, stored in the checkpoint
    encoder_weights: str = "none"


@dataclass
class FloorFit:
    """The fitted estimator, its coefficients, the chosen alpha and the inner-CV table."""

    estimator: Any
    coef: np.ndarray
    alpha: float
    selection: str  # predictions' model_selection: inner_cv or fixed_penalty
    log: pd.DataFrame  # train_log.tsv: one row per alpha (inner-CV c-index) or the one fit


@dataclass(frozen=True)
class Breslow:
    """Breslow baseline cumulative hazard of a fitted Cox model, for any spread of its risks.

    Written by hand because scikit-survival's BreslowEstimator (sksurv 0.25) forms each risk-set
    sum by subtracting from the total: when one exp(risk) dominates (risks spanning +-40 at a
    small Coxnet alpha; TCGA-BLCA fold 4) the sums cancel, the cumulative hazard goes negative
    and S(t | x) comes out > 1 or inf. Here the risk sets are reverse cumulative sums of
    exp(risk - shift), shift = the largest training risk: no subtraction, no overflow.
    """

    times: np.ndarray  # distinct event times of the training cases, ascending
    cumhaz: np.ndarray  # H0(t) at those times, for exp(risk - shift)
    shift: float

    @classmethod
    def fit(cls, risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> Breslow:
        """Fit on the training cases' risks (linear predictor), times and event flags."""
        risk, time, event = (np.asarray(a) for a in (risk, time, event))
        order = np.argsort(time, kind="stable")
        t_sorted = time[order].astype(np.float64)
        shift = float(np.max(risk))
        at_risk = np.cumsum(np.exp(risk[order] - shift)[::-1])[::-1]  # sum over time >= t_i
        times = np.unique(t_sorted[event[order].astype(bool)])
        deaths = np.array([np.sum((time == t) & event.astype(bool)) for t in times], float)
        denom = at_risk[np.searchsorted(t_sorted, times, side="left")]
        return cls(times=times, cumhaz=np.cumsum(deaths / denom), shift=shift)

    def log_cumhaz(self, risk: float, at: np.ndarray) -> np.ndarray:
        """log H(t | risk) at `at` (-inf before the first event time)."""
        idx = np.searchsorted(self.times, np.asarray(at, np.float64), side="right") - 1
        h = np.where(idx >= 0, self.cumhaz[np.clip(idx, 0, None)], 0.0)
        with np.errstate(divide="ignore"):
            return np.log(h) + (float(risk) - self.shift)

    def survival(self, risk: np.ndarray, at: np.ndarray) -> np.ndarray:
        """S(t | x) = exp(-H0(t) exp(risk)) at `at`: (n cases, n times); 1 before any event."""
        idx = np.searchsorted(self.times, np.asarray(at, np.float64), side="right") - 1
        h = np.where(idx >= 0, self.cumhaz[np.clip(idx, 0, None)], 0.0)
        return np.exp(-np.outer(np.exp(np.asarray(risk, np.float64) - self.shift), h))


def fit_linear_fold(job: FoldJob, clinical: pd.DataFrame) -> dict[str, Any]:
    """Fit the floor on folds != job.fold, score job.fold and write the four outputs."""
    t_start = time.perf_counter()
    floor = create_floor(job.model_name, **job.p["model_kwargs"])
    # the inner CV uses every training case: no epoch-selection split here. The floors have no
    # epochs, so training.model_selection (inner_val, best_test_epoch_leaky) changes nothing:
    # they never see the held-out fold, and their model_selection reads inner_cv/fixed_penalty
    cases = select_cases(replace(job, p={**job.p, "model_selection": "last_epoch"}), clinical)
    inputs = floor_inputs(job, floor, clinical, cases)
    train = clinical.loc[cases.train_ids]
    y = Surv.from_arrays(event=train["event"].to_numpy(bool), time=train["survival_months"])
    if floor.penalty == "elastic_net":
        fit = fit_coxnet(floor, inputs.train, y, seed=job.seed)
    else:
        fit = fit_ridge(floor, inputs.train, y)
    test = clinical.loc[cases.test_ids]
    edges = _bin_edges(job, clinical, cases)
    baseline = Breslow.fit(fit.estimator.predict(inputs.train), y["time"], y["event"])
    risk, sv, haz = _score(fit.estimator, baseline, inputs.test, edges)
    pred = prediction_table(
        job,
        cases.test_ids,
        times=test["survival_months"].to_numpy(float),
        events=test["event"].to_numpy(bool),
        haz=haz,
        sv=sv,
        risk=risk,
        model_selection=fit.selection,
        encoder_weights=inputs.encoder_weights,
    )
    # The same fit scores the training cases: the honest KM's per-fold cutpoints.
    risk_fit, sv_fit, haz_fit = _score(fit.estimator, baseline, inputs.train, edges)
    train_pred = train_risk_table(
        job, cases, times=train["survival_months"].to_numpy(float),
        events=train["event"].to_numpy(bool), haz=haz_fit, sv=sv_fit, risk=risk_fit,
        model_selection=fit.selection, encoder_weights=inputs.encoder_weights,
    )  # fmt: skip
    test_ci = cindex(test["event"].to_numpy(bool), test["survival_months"].to_numpy(float), risk)
    seconds = time.perf_counter() - t_start
    meta = _meta(job, floor, cases, inputs, fit, edges, test_ci, seconds)
    _write(job, floor, pred, fit, baseline, inputs, meta, train_pred)
    log.info(
        "%s %s fold %d: %d train / %d test cases, %d features, alpha %.4g, %d non-zero "
        "coefficients, test c-index %.4f",
        job.cohort, job.model_name, job.fold, len(cases.train_ids), len(cases.test_ids),
        inputs.train.shape[1], fit.alpha, int(np.count_nonzero(fit.coef)), test_ci,
    )  # fmt: skip
    return summary_row(
        job, cases, test_ci, final_loss=math.nan, train_seconds=seconds, fallbacks=[]
    )


def _score(
    estimator: Any, baseline: Breslow, x: pd.DataFrame, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Risk (linear predictor), S(t | x) at the bin ends and the bins' hazards of cases `x`."""
    risk = np.asarray(estimator.predict(x), dtype=np.float64)
    sv = baseline.survival(risk, edges[1:])
    prev = np.hstack([np.ones((len(sv), 1)), sv[:, :-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        haz = np.where(prev > 0, 1.0 - sv / prev, 0.0)
    return risk, sv, np.clip(haz, 0.0, 1.0)


def _bin_edges(job: FoldJob, clinical: pd.DataFrame, cases: FoldCases) -> np.ndarray:
    """The time-bin edges surv_j is reported at (bins_fit_on's cases, as for the deep models)."""
    ids = cases.train_ids + (cases.test_ids if job.p["bins_fit_on"] == "all" else [])
    rows = clinical.loc[ids]
    return time_bin_edges(
        rows["survival_months"].to_numpy(float), rows["event"].to_numpy(bool), job.p["n_bins"]
    )


# --------------------------------------------------------------------------- features
def floor_inputs(
    job: FoldJob, floor: LinearFloor, clinical: pd.DataFrame, cases: FoldCases
) -> FloorInputs:
    """The floor's features for the training and held-out cases, fitted on training only."""
    if floor.features == "omic":
        return _omic_inputs(job, cases)
    if floor.features == "path":
        return _path_inputs(job, cases)
    return clinical_inputs(
        clinical, cases, job.p["clinical_covariates"], clinical_tsv=job.clinical_tsv
    )


def _standardised(
    table: pd.DataFrame, cases: FoldCases, what: str, encoder_weights: str = "none"
) -> FloorInputs:
    """z-score `table`'s columns with the training cases' mean and std (Standardizer)."""
    scaler = Standardizer().fit(table.loc[cases.train_ids])
    return FloorInputs(
        train=scaler.transform(table.loc[cases.train_ids]).astype(np.float64),
        test=scaler.transform(table.loc[cases.test_ids]).astype(np.float64),
        preprocess={"features": what, "standardizer": scaler.to_dict()},
        encoder_weights=encoder_weights,
    )


def _omic_inputs(job: FoldJob, cases: FoldCases) -> FloorInputs:
    """The family genes, each omics column once (unique_genes layout), raw then z-scored."""
    families = read_families_json(job.families_json)
    ids = cases.train_ids + cases.test_ids
    (block,), scaler = _load_omics(job.omics_parquet, families, ids, cases.train_ids, unique=True)
    z = pd.DataFrame(block.astype(np.float64), index=ids, columns=list(scaler.columns or []))
    return FloorInputs(
        train=z.loc[cases.train_ids],
        test=z.loc[cases.test_ids],
        preprocess={"features": "omic: family genes, each column once", **_scaler(scaler)},
    )


def _scaler(scaler: Standardizer) -> dict[str, Any]:
    """The standardiser's statistics under the checkpoint's key."""
    return {"standardizer": scaler.to_dict()}


def mean_pooled_bags(bags_h5: str, case_ids: list[str]) -> pd.DataFrame:
    """One row per case: the mean of its patch features (bags.h5, read one case at a time)."""
    with BagStore(bags_h5) as store:
        check_bags(store, case_ids, bags_h5)
        rows = [store[c].mean(axis=0, dtype=np.float64) for c in case_ids]
    dim = len(rows[0]) if rows else 0
    return pd.DataFrame(rows, index=case_ids, columns=[f"feat_{j}" for j in range(dim)])


def _path_inputs(job: FoldJob, cases: FoldCases) -> FloorInputs:
    """Mean-pooled patch features per case, z-scored with the training cases' statistics."""
    if job.bags_h5 is None:
        raise ValueError(f"model {job.model_name!r} needs pathology but bags_h5 is None")
    table = mean_pooled_bags(job.bags_h5, cases.train_ids + cases.test_ids)
    weights = str(bag_attrs(job.bags_h5).get("weights", "unknown"))
    return _standardised(table, cases, "path: mean of the patch features", weights)


def clinical_inputs(
    clinical: pd.DataFrame, cases: FoldCases, covariates: list[str], *, clinical_tsv: str
) -> FloorInputs:
    """One-hot text covariates, standardised numeric ones (training medians fill gaps)."""
    enc = fit_clinical(
        clinical, cases.train_ids, cases.test_ids, covariates, clinical_tsv=clinical_tsv
    )
    return FloorInputs(
        train=enc.train, test=enc.test, preprocess={"features": "clinical", **enc.stats}
    )


# --------------------------------------------------------------------------- fitting
def _inner_splits(
    events: np.ndarray, n_folds: int, seed: int, repeats: int = 1
) -> list[tuple[np.ndarray, ...]]:
    """Event-stratified inner folds of the training cases (fewer when events are scarce),
    `repeats` shuffles of them (repeat 1 = StratifiedKFold(shuffle=True, random_state=seed))."""
    n_events = int(events.sum())
    n_cens = int((~events).sum())
    if n_events < 2:
        raise ValueError(
            f"{n_events} event(s) among the training cases: an inner CV for alpha needs >= 2"
        )
    k = min(n_folds, n_events, n_cens) if n_cens else min(n_folds, n_events)
    k = max(k, 2)
    if k < n_folds:
        log.warning("inner CV: %d folds instead of %d (%d events, %d censored)",
                    k, n_folds, n_events, n_cens)  # fmt: skip
    x = np.zeros((len(events), 1))
    cv = RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
    return list(cv.split(x, events))


def _fit_path(
    floor: LinearFloor,
    x: pd.DataFrame | np.ndarray,
    y: np.ndarray,
    alphas: np.ndarray,
    baseline: bool = False,
) -> tuple[Any, int]:
    """Coxnet along `alphas` (largest first, warm starts); the smallest are dropped while the
    fit diverges. Returns the fitted estimator and how many alphas it reached."""
    n = len(alphas)
    while n >= 1:
        try:
            return floor.grid_estimator(alphas[:n], baseline=baseline).fit(x, y), n
        except ArithmeticError:  # weights too large at the smallest alphas
            n -= max(1, n // 5)
    raise ArithmeticError(
        f"{floor.name}: Coxnet diverged even at alpha {alphas[0]:.4g}; raise "
        f"training.model_kwargs.{floor.name}.alpha_min_ratio (now {floor.alpha_min_ratio})"
    )


def _inner_cindex(
    floor: LinearFloor, x: pd.DataFrame, y: np.ndarray, alphas: np.ndarray, splits: list
) -> tuple[np.ndarray, int]:
    """c-index of every alpha on every inner validation fold (n_folds, n_alphas; NaN where no
    pair is comparable) and how many alphas the path reached on every inner fold."""
    scores = np.full((len(splits), len(alphas)), np.nan)
    reached_all = len(alphas)
    # The inner fits are thrown away, so they get a plain array: given a DataFrame, sklearn's
    # input check inspects every column's dtype on every predict (one per alpha per fold), which
    # took 14 of a 20-s coxnet_path job on 1024 features. Same numbers either way.
    values = x.to_numpy(dtype=np.float64)
    for i, (fit_idx, val_idx) in enumerate(splits):
        est, reached = _fit_path(floor, values[fit_idx], y[fit_idx], alphas)
        reached_all = min(reached_all, reached)
        val, x_val = y[val_idx], values[val_idx]
        for j in range(reached):
            risk = est.predict(x_val, alpha=alphas[j])
            scores[i, j] = cindex(val["event"], val["time"], risk)
    return scores, reached_all


def fit_coxnet(floor: LinearFloor, x: pd.DataFrame, y: np.ndarray, *, seed: int) -> FloorFit:
    """Coxnet path once on the training cases (the alpha grid), then alpha by inner CV.

    As scikit-survival's Coxnet guide (GridSearchCV over the path's alphas, c-index on each
    inner validation fold), but each inner fold fits the whole path with warm starts: a cold
    fit per small alpha takes minutes when genes outnumber cases. The largest alpha with the
    best mean inner c-index wins; the final model is the path on all training cases down to it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # convergence notes at the smallest alphas
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow while a small alpha diverges
        path, reached = _fit_path(floor, x, y, floor.path_estimator().fit(x, y).alphas_)
        alphas = np.asarray(path.alphas_[:reached], dtype=float)
        splits = _inner_splits(y["event"], int(floor.inner_folds), seed, int(floor.inner_repeats))
        scores, reached_all = _inner_cindex(floor, x, y, alphas, splits)
        mean = np.nanmean(scores, axis=0)
        mean[reached_all:] = np.nan  # an alpha that diverged on some inner fold is not chosen
        if not np.isfinite(mean).any():
            raise ArithmeticError(f"{floor.name}: no alpha has an inner c-index")
        best = int(np.nanargmax(mean))  # first = largest alpha among equal means
        final, _ = _fit_path(floor, x, y, alphas[: best + 1], baseline=True)
    table = pd.DataFrame(
        {
            "alpha": alphas,
            "mean_inner_cindex": mean,
            "std_inner_cindex": np.nanstd(scores, axis=0, ddof=0),
            "n_inner_folds": np.isfinite(scores).sum(axis=0),
            "chosen": np.arange(len(alphas)) == best,
        }
    )
    return FloorFit(final, np.asarray(final.coef_)[:, -1], float(alphas[best]), "inner_cv", table)


def fit_ridge(floor: LinearFloor, x: pd.DataFrame, y: np.ndarray) -> FloorFit:
    """CoxPH with the floor's fixed ridge alpha on all training cases; train c-index logged."""
    est = floor.ridge_estimator().fit(x, y)
    train_ci = cindex(y["event"], y["time"], est.predict(x))
    table = pd.DataFrame({"alpha": [float(floor.alpha)], "train_cindex": [train_ci]})
    table["chosen"] = True
    return FloorFit(est, np.asarray(est.coef_), float(floor.alpha), "fixed_penalty", table)


# --------------------------------------------------------------------------- outputs
def _checkpoint(
    floor: LinearFloor, fit: FloorFit, baseline: Breslow, inputs: FloorInputs
) -> dict[str, Any]:
    """checkpoint.pt: plain tensors, lists and numbers (torch.load(weights_only=True) reads it).

    risk(x) = x @ coef - offset on the preprocessed features; S(t | x) =
    exp(-exp(baseline_log_cumhazard(t) + risk(x))) = baseline_survival(t) ** exp(risk(x)), both
    step functions at baseline_time (the first form keeps its precision at any risk).
    """
    zero = pd.DataFrame(np.zeros((1, inputs.train.shape[1])), columns=inputs.train.columns)
    lp0 = float(fit.estimator.predict(zero)[0])
    log_h0 = baseline.log_cumhaz(0.0, baseline.times)  # log H(t) of a case with risk(x) = 0
    return {
        "kind": "linear_floor",
        "model_name": floor.name,
        "settings": floor.settings(),
        "alpha": fit.alpha,
        "feature_names": list(inputs.train.columns),
        "coef": torch.tensor(fit.coef, dtype=torch.float64),
        "offset": -lp0,
        "baseline_time": torch.tensor(baseline.times, dtype=torch.float64),
        "baseline_log_cumhazard": torch.tensor(log_h0, dtype=torch.float64),
        "baseline_survival": torch.tensor(np.exp(-np.exp(log_h0)), dtype=torch.float64),
        "preprocess": inputs.preprocess,
    }


def _meta(
    job: FoldJob,
    floor: LinearFloor,
    cases: FoldCases,
    inputs: FloorInputs,
    fit: FloorFit,
    edges: np.ndarray,
    test_ci: float,
    seconds: float,
) -> dict[str, Any]:
    """meta.json, as the deep models write it, plus the floor's kind, alpha and features."""
    p = job.p
    return {
        "cohort": job.cohort,
        "model": job.model_name,
        "kind": "linear_floor",
        "fold": job.fold,
        "seed": job.seed,
        "device": "cpu",
        "params": p,
        "model_kwargs_resolved": floor.settings(),
        "bin_edges": edges.tolist(),
        "bins_fit_on": p["bins_fit_on"],
        "n_train": len(cases.train_ids),
        "n_test": len(cases.test_ids),
        "train_case_ids": cases.train_ids,
        "test_case_ids": cases.test_ids,
        "encoder": "none",
        "encoder_weights": inputs.encoder_weights,
        "model_selection": fit.selection,
        "alpha": fit.alpha,
        "n_features": int(inputs.train.shape[1]),
        "n_nonzero": int(np.count_nonzero(fit.coef)),
        "clinical_covariates": p["clinical_covariates"] if floor.features == "clinical" else None,
        "train_seconds": seconds,
        "missing_modality": p["missing_modality"],
        "excluded_cases": dict(sorted(cases.excluded.items())),
        "test_cindex": None if math.isnan(test_ci) else test_ci,
        "versions": package_versions(),
    }


def _write(
    job: FoldJob,
    floor: LinearFloor,
    pred: pd.DataFrame,
    fit: FloorFit,
    baseline: Breslow,
    inputs: FloorInputs,
    meta: dict[str, Any],
    train_pred: pd.DataFrame,
) -> None:
    """Write predictions.parquet, train_risks.parquet, train_log.tsv, checkpoint.pt and
    meta.json, each atomically."""
    out = job.out
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "predictions.parquet") as tmp:
        pred.to_parquet(tmp, engine="pyarrow", index=False)
    write_predictions_missing(job, pred)  # a floor's one scoring (withheld none)
    with atomic_path(out / "train_risks.parquet") as tmp:
        train_pred.to_parquet(tmp, engine="pyarrow", index=False)
    with atomic_path(out / "train_log.tsv") as tmp:
        fit.log.to_csv(tmp, sep="\t", index=False)
    with atomic_path(out / "checkpoint.pt") as tmp:
        torch.save(
            {**_checkpoint(floor, fit, baseline, inputs), "meta": json.loads(_json(meta))}, tmp
        )
    write_text_atomic(out / "meta.json", _json(meta))


def _json(meta: dict[str, Any]) -> str:
    """meta as JSON text (numpy values made plain)."""
    return json.dumps(meta, indent=2, default=json_default)
