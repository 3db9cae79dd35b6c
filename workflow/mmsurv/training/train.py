"""Train one cohort × model × fold end to end and write its predictions, checkpoint and logs."""

from __future__ import annotations

import inspect
import json
import logging
import math
import platform
import random
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sksurv.metrics import concordance_index_censored

import mmsurv
from mmsurv.bags.data import (
    BagStore,
    SurvivalDataset,
    bag_attrs,
    discretize,
    make_folds,
    make_weighted_sampler,
    read_clinical,
    read_splits,
    time_bin_edges,
)
from mmsurv.bags.omics import Standardizer, read_families_json
from mmsurv.io import atomic_path, json_default, write_text_atomic
from mmsurv.models import create_model, model_class, model_modalities
from mmsurv.training.losses import nll_surv_loss

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_PARAMS", "resolve_params", "train_fold"]

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


def _seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def _resolve_device(device: str) -> torch.device:
    """'auto' → CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _cindex(events: np.ndarray, times: np.ndarray, risks: np.ndarray) -> float:
    """Harrell's c-index (sksurv), NaN when no pair is comparable."""
    try:
        return float(concordance_index_censored(events.astype(bool), times, risks)[0])
    except ValueError:  # all censored, < 2 samples, or no comparable pairs
        return float("nan")


def _versions() -> dict[str, str]:
    """Versions of the packages that determine the results."""
    out = {"python": platform.python_version(), "mmsurv": mmsurv.__version__}
    for pkg in ("torch", "numpy", "pandas", "pot", "scikit-survival", "h5py"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _load_omics(
    omics_parquet: str, families: dict[str, list[str]], case_ids: list[str], train_ids: list[str]
) -> tuple[list[np.ndarray], Standardizer]:
    """Standardise the family columns with training statistics; return per-family blocks."""
    table = pd.read_parquet(omics_parquet)
    table.index = table.index.astype(str)
    absent = [c for c in case_ids if c not in table.index]
    if absent:
        raise ValueError(f"{omics_parquet}: no omics for cases {absent[:20]} (model needs omics)")
    columns = list(dict.fromkeys(c for cols in families.values() for c in cols))
    missing_cols = [c for c in columns if c not in table.columns]
    if missing_cols:
        raise ValueError(f"{omics_parquet}: family columns missing: {missing_cols[:20]}")
    scaler = Standardizer().fit(table.loc[train_ids, columns])
    z = scaler.transform(table.loc[case_ids, columns])
    return [z[cols].to_numpy(dtype=np.float32) for cols in families.values()], scaler


def _check_bags(store: BagStore, case_ids: list[str], bags_h5: str) -> None:
    """Every case must have a non-empty bag when the model reads pathology."""
    absent = [c for c in case_ids if c not in store]
    if absent:
        raise ValueError(f"{bags_h5}: no patch bag for cases {absent[:20]} (model needs pathology)")
    empty = [c for c in case_ids if store.n_patches(c) == 0]
    if empty:
        raise ValueError(f"{bags_h5}: cases with 0 patches {empty[:20]} (model needs pathology)")


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


def _inputs(
    item: dict[str, Any], need_path: bool, need_omic: bool, dev: torch.device
) -> tuple[torch.Tensor | None, list[torch.Tensor] | None]:
    """Move one item's model inputs to the device."""
    path = item["path"].to(dev) if need_path else None
    omics = [o.to(dev) for o in item["omics"]] if need_omic else None
    return path, omics


def _predict(
    model: torch.nn.Module,
    item: dict[str, Any],
    need_path: bool,
    need_omic: bool,
    dev: torch.device,
    fallbacks: list[str],
) -> Any:
    """Eval-mode forward on the whole bag; a GPU out-of-memory falls back to the CPU for this case.

    Training caps bags at max_patches; evaluation sees every patch, so one huge case (100k
    patches) may not fit on the GPU. That case is then scored on the CPU (same weights, same
    result up to float rounding) and listed, instead of the job failing after training.
    """
    try:
        return model(*_inputs(item, need_path, need_omic, dev))
    except torch.cuda.OutOfMemoryError:
        if dev.type == "cpu":
            raise
    case = item.get("case_id", "?")
    n = int(item["path"].shape[0]) if need_path else 0
    log.warning("case %s (%d patches): out of GPU memory at evaluation; scored on the CPU", case, n)
    fallbacks.append(str(case))
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    cpu = torch.device("cpu")
    model.to(cpu)
    try:
        res = model(*_inputs(item, need_path, need_omic, cpu))
    finally:
        model.to(dev)
    return res


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
    """Train on folds != `fold`, predict fold `fold`, write the fold's outputs; return a summary."""
    if "seed" in params and int(params["seed"]) != seed:
        raise ValueError(f"params.seed={params['seed']} differs from seed={seed}")
    p = resolve_params(params)
    if p["num_threads"]:
        torch.set_num_threads(int(p["num_threads"]))
    dev = _resolve_device(device)
    _seed_everything(seed)
    modalities = model_modalities(model_name)  # unknown model → ValueError listing names
    need_path, need_omic = "path" in modalities, "omic" in modalities
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    clinical = read_clinical(clinical_tsv)
    splits = read_splits(splits_tsv)
    if fold not in set(splits["fold"]):
        raise ValueError(
            f"{splits_tsv}: fold {fold} not present (folds {sorted(set(splits.fold))})"
        )
    no_label = [c for c in splits["case_id"] if c not in clinical.index]
    if no_label:
        raise ValueError(f"{clinical_tsv}: no survival data for split cases {no_label[:20]}")
    train_ids = splits.loc[splits["fold"] != fold, "case_id"].tolist()
    test_ids = splits.loc[splits["fold"] == fold, "case_id"].tolist()
    excluded: dict[str, str] = {}
    if p["missing_modality"] == "exclude":
        excluded = _lacking_modality(
            train_ids + test_ids, need_path, need_omic, omics_parquet, bags_h5
        )
        if excluded:
            log.warning(
                "%s %s fold %d: %d case(s) without the model's modalities are left out "
                "(missing_policy keep_unimodal): %s",
                cohort, model_name, fold, len(excluded), sorted(excluded)[:20],
            )  # fmt: skip
            train_ids = [c for c in train_ids if c not in excluded]
            test_ids = [c for c in test_ids if c not in excluded]
        if not test_ids:
            raise ValueError(
                f"{splits_tsv}: fold {fold} has no case that model {model_name!r} can use "
                f"(it needs {sorted(modalities)})"
            )
    if not train_ids:
        raise ValueError(f"{splits_tsv}: no training cases outside fold {fold}")
    n_val = 0
    if p["model_selection"] == "inner_val":
        train_ids, n_val = _inner_split(clinical, train_ids, p["inner_val_fraction"], seed)
    all_ids = train_ids + test_ids

    families = read_families_json(families_json)
    omic_sizes = [len(cols) for cols in families.values()]
    omics_blocks: list[np.ndarray] | None = None
    scaler: Standardizer | None = None
    if need_omic:
        omics_blocks, scaler = _load_omics(omics_parquet, families, all_ids, train_ids)

    store: BagStore | None = None
    encoder, encoder_weights, path_dim = "none", "none", None
    if need_path:
        if bags_h5 is None:
            raise ValueError(f"model {model_name!r} needs pathology but bags_h5 is None")
        attrs = bag_attrs(bags_h5)
        encoder = str(attrs.get("encoder", "unknown"))
        encoder_weights = str(attrs.get("weights", "unknown"))
        path_dim = int(attrs["feature_dim"]) if "feature_dim" in attrs else None
        store = BagStore(bags_h5)
    try:
        if store is not None:
            _check_bags(store, all_ids, str(bags_h5))
        summary = _run(
            p=p,
            cohort=cohort,
            model_name=model_name,
            fold=fold,
            seed=seed,
            dev=dev,
            out=out,
            clinical=clinical,
            train_ids=train_ids,
            test_ids=test_ids,
            n_val=n_val,
            omics_blocks=omics_blocks,
            omic_sizes=omic_sizes,
            scaler=scaler,
            store=store,
            path_dim=path_dim,
            need_path=need_path,
            need_omic=need_omic,
            encoder=encoder,
            encoder_weights=encoder_weights,
            excluded=excluded,
        )
    finally:
        if store is not None:
            store.close()
    return summary


def _state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the model's weights (to restore the selected epoch)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _evaluate_loss(
    model: torch.nn.Module,
    ds: SurvivalDataset,
    need_path: bool,
    need_omic: bool,
    dev: torch.device,
    alpha: float,
    fallbacks: list[str],
) -> tuple[float, float]:
    """Mean NLL survival loss and c-index of the model (eval mode) on a dataset."""
    model.eval()
    losses, risks = [], []
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            res = _predict(model, item, need_path, need_omic, dev, fallbacks)
            label = item["label"].view(1).to(res.hazards.device)
            event = torch.tensor([item["event"]], device=res.hazards.device)
            losses.append(float(nll_surv_loss(res.hazards, label, event, alpha=alpha)))
            risks.append(float(-res.surv.sum()))
    return float(np.mean(losses)), _cindex(ds.events, ds.times, np.asarray(risks))


def _run(
    *,
    p: dict[str, Any],
    cohort: str,
    model_name: str,
    fold: int,
    seed: int,
    dev: torch.device,
    out: Path,
    clinical: pd.DataFrame,
    train_ids: list[str],
    test_ids: list[str],
    n_val: int,
    omics_blocks: list[np.ndarray] | None,
    omic_sizes: list[int],
    scaler: Standardizer | None,
    store: BagStore | None,
    path_dim: int | None,
    need_path: bool,
    need_omic: bool,
    encoder: str,
    encoder_weights: str,
    excluded: dict[str, str],
) -> dict[str, Any]:
    """The training loop and output writing of `train_fold` (inputs already validated)."""
    n_train = len(train_ids)
    times = clinical.loc[train_ids + test_ids, "survival_months"].to_numpy(dtype=float)
    events = clinical.loc[train_ids + test_ids, "event"].to_numpy(dtype=bool)
    # Bins from the training cases only (MCAT fits them on all patients: a test-fold leak).
    edges = time_bin_edges(times[:n_train], events[:n_train], p["n_bins"])
    labels = discretize(times, edges)

    def dataset(sl: slice, ids: list[str], training: bool) -> SurvivalDataset:
        return SurvivalDataset(
            ids,
            labels=labels[sl],
            events=events[sl],
            times=times[sl],
            bags=store,
            omics=None if omics_blocks is None else [b[sl] for b in omics_blocks],
            training=training,
            max_patches=p["max_patches"],
        )

    n_fit = n_train - n_val  # inner_val: the last n_val training cases only select the epoch
    ds_train = dataset(slice(0, n_fit), train_ids[:n_fit], True)
    ds_val = dataset(slice(n_fit, n_train), train_ids[n_fit:], False) if n_val else None
    ds_test = dataset(slice(n_train, None), test_ids, False)

    kwargs: dict[str, Any] = {"n_bins": p["n_bins"], "omic_sizes": omic_sizes}
    if path_dim is not None:
        kwargs["path_dim"] = path_dim
    if "lambda_sim" in inspect.signature(model_class(model_name)).parameters:
        kwargs["lambda_sim"] = p["lambda_sim"]
    user_kwargs = p["model_kwargs"]
    if path_dim is not None and "path_dim" in user_kwargs and user_kwargs["path_dim"] != path_dim:
        raise ValueError(
            f"model_kwargs.path_dim={user_kwargs['path_dim']} but the bags have dim {path_dim}"
        )
    kwargs.update(user_kwargs)
    model = create_model(model_name, **kwargs).to(dev)
    # Models with a label-dependent training term (CLAM's instance loss) take `label=` in
    # training; evaluation never passes it, so predictions cannot see the held-out labels.
    takes_label = "label" in inspect.signature(model.forward).parameters
    optimizer = torch.optim.Adam(
        (q for q in model.parameters() if q.requires_grad),
        lr=p["lr"],
        weight_decay=p["weight_decay"],
    )
    sampler = (
        make_weighted_sampler(ds_train.labels, ds_train.events) if p["weighted_sampling"] else None
    )
    log.info(
        "%s %s fold %d: %d train (%d of them inner validation) / %d test cases, bins %s, "
        "device %s, model selection %s",
        cohort, model_name, fold, n_train, n_val, len(test_ids), np.round(edges, 2).tolist(),
        dev, p["model_selection"],
    )  # fmt: skip

    history = []
    cpu_fallbacks: list[str] = []  # cases scored on the CPU after a GPU out-of-memory
    best: tuple[int, float, dict[str, torch.Tensor]] | None = None
    t_start = time.perf_counter()
    for epoch in range(p["epochs"]):
        t0 = time.perf_counter()
        model.train()
        order = list(sampler) if sampler is not None else torch.randperm(n_fit).tolist()
        optimizer.zero_grad()
        tot = surv_tot = aux_tot = 0.0
        epoch_risk: dict[int, float] = {}
        for step, i in enumerate(order, start=1):
            item = ds_train[i]
            path, omics = _inputs(item, need_path, need_omic, dev)
            label = item["label"].view(1).to(dev)
            res = model(path, omics, label=label) if takes_label else model(path, omics)
            loss_surv = nll_surv_loss(
                res.hazards,
                label,
                torch.tensor([item["event"]], device=dev),
                alpha=p["alpha_surv"],
            )
            loss = loss_surv + res.aux_loss
            if p["l1_reg"] > 0:
                loss = loss + p["l1_reg"] * sum(q.abs().sum() for q in model.parameters())
            (loss / p["grad_accum"]).backward()
            if step % p["grad_accum"] == 0:
                optimizer.step()
                optimizer.zero_grad()
            tot += float(loss.detach())
            surv_tot += float(loss_surv.detach())
            aux_tot += float(res.aux_loss.detach())
            epoch_risk[int(i)] = float(-res.surv.detach().sum())
        if len(order) % p["grad_accum"] != 0:
            optimizer.step()
            optimizer.zero_grad()
        idx = np.array(sorted(epoch_risk))
        train_ci = _cindex(
            ds_train.events[idx], ds_train.times[idx], np.array([epoch_risk[k] for k in idx])
        )
        row = {
            "epoch": epoch,
            "loss": tot / len(order),
            "train_cindex": train_ci,
            "seconds": time.perf_counter() - t0,
            "loss_surv": surv_tot / len(order),
            "loss_aux": aux_tot / len(order),
        }
        if ds_val is not None:
            row["val_loss"], row["val_cindex"] = _evaluate_loss(
                model, ds_val, need_path, need_omic, dev, p["alpha_surv"], cpu_fallbacks
            )
            if best is None or row["val_loss"] < best[1]:
                best = (epoch, row["val_loss"], _state_copy(model))
        history.append(row)
        log.info(
            "epoch %d/%d loss %.4f (surv %.4f aux %.4f) train c-index %.3f %.1fs",
            epoch + 1, p["epochs"], row["loss"], row["loss_surv"], row["loss_aux"], train_ci,
            row["seconds"],
        )  # fmt: skip
    train_seconds = time.perf_counter() - t_start

    # Prediction on the held-out fold with the weights model_selection chose.
    selected_epoch = p["epochs"] - 1
    if best is not None:
        selected_epoch = best[0]
        model.load_state_dict(best[2])
        log.info("inner_val: epoch %d selected (validation NLL %.4f)", best[0] + 1, best[1])
    model.eval()
    hazards, survs = [], []
    with torch.no_grad():
        for i in range(len(ds_test)):
            res = _predict(model, ds_test[i], need_path, need_omic, dev, cpu_fallbacks)
            hazards.append(res.hazards.squeeze(0).cpu().numpy())
            survs.append(res.surv.squeeze(0).cpu().numpy())
    n_bins = p["n_bins"]
    haz = np.asarray(hazards, dtype=np.float64).reshape(-1, n_bins)
    sv = np.asarray(survs, dtype=np.float64).reshape(-1, n_bins)
    risk = -sv.sum(axis=1)
    test_events, test_times = ds_test.events, ds_test.times
    pred = pd.DataFrame({"case_id": test_ids, "fold": fold, "risk": risk})
    for j in range(n_bins):
        pred[f"hazard_{j}"] = haz[:, j]
    for j in range(n_bins):
        pred[f"surv_{j}"] = sv[:, j]
    pred["survival_months"] = test_times
    pred["event"] = test_events
    pred["censorship"] = (~test_events).astype(np.int64)  # MCAT's convention, I/O only
    pred["model"] = model_name
    pred["cohort"] = cohort
    pred["model_selection"] = p["model_selection"]
    pred["encoder_weights"] = encoder_weights
    test_ci = _cindex(test_events, test_times, risk)

    meta = {
        "cohort": cohort,
        "model": model_name,
        "fold": fold,
        "seed": seed,
        "device": str(dev),
        "params": p,
        "model_kwargs_resolved": kwargs,
        "bin_edges": edges.tolist(),
        "n_train": n_train,
        "n_test": len(test_ids),
        "train_case_ids": train_ids,
        "test_case_ids": test_ids,
        "encoder": encoder,
        "encoder_weights": encoder_weights,
        "model_selection": p["model_selection"],
        "selected_epoch": selected_epoch,
        "inner_val_case_ids": train_ids[n_fit:],
        "epochs_trained": p["epochs"],
        "train_seconds": train_seconds,
        "eval_cpu_fallback_cases": sorted(set(cpu_fallbacks)),
        "missing_modality": p["missing_modality"],
        "excluded_cases": dict(sorted(excluded.items())),
        "test_cindex": None if math.isnan(test_ci) else test_ci,
        "standardizer": None if scaler is None else scaler.to_dict(),
        "versions": _versions(),
    }
    with atomic_path(out / "predictions.parquet") as tmp:
        pred.to_parquet(tmp, engine="pyarrow", index=False)
    with atomic_path(out / "train_log.tsv") as tmp:
        pd.DataFrame(history).to_csv(tmp, sep="\t", index=False)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(out / "checkpoint.pt") as tmp:
        torch.save({"model_name": model_name, "state_dict": state, "meta": meta}, tmp)
    write_text_atomic(out / "meta.json", json.dumps(meta, indent=2, default=json_default))
    summary = {
        "cohort": cohort,
        "model": model_name,
        "fold": fold,
        "seed": seed,
        "test_cindex": test_ci,
        "n_train": n_train,
        "n_test": len(test_ids),
        "final_loss": history[-1]["loss"] if history else math.nan,
        "train_seconds": train_seconds,
        "eval_cpu_fallback_cases": sorted(set(cpu_fallbacks)),
        "out_dir": str(out),
    }
    log.info("%s %s fold %d: test c-index %.4f", cohort, model_name, fold, test_ci)
    return summary
