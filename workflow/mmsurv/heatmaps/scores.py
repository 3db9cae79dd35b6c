"""Per-patch scores of one held-out case from the checkpoint of the fold that held it out."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch

from mmsurv.bags.data import read_clinical
from mmsurv.bags.omics import Standardizer, read_families_json
from mmsurv.io import py_value
from mmsurv.models import create_model
from mmsurv.training.clinical import encode_clinical
from mmsurv.training.outputs import checkpoint_path_scaler, read_checkpoint
from mmsurv.training.path_scaler import PathScaler

__all__ = [
    "CaseBag",
    "FoldModel",
    "SlideCoords",
    "case_omics",
    "load_fold_model",
    "panel_datasets",
    "read_case_bag",
    "read_omics_table",
    "read_slide_coords",
    "score_case",
]


@dataclass(frozen=True)
class FoldModel:
    """A fold job's trained model (eval mode, CPU) with its meta.json content."""

    model: torch.nn.Module
    meta: dict[str, Any]
    checkpoint: Path
    path_scaler: PathScaler | None = None  # path_norm zscore: the training patches' statistics

    @property
    def caption(self) -> str:
        """What the model's per-patch score is, in words (`patch_score_caption`)."""
        return str(getattr(self.model, "patch_score_caption", None) or "")


@dataclass(frozen=True)
class CaseBag:
    """A case's bag from bags.h5: features (N, D), slide_index (N,), its slides in bag order."""

    case_id: str
    features: np.ndarray
    slide_index: np.ndarray
    slide_ids: list[str]


@dataclass(frozen=True)
class SlideCoords:
    """Level-0 top-left patch coords of one slide (features h5) and their tiling attrs."""

    slide_id: str
    coords: np.ndarray  # (N, 2) int64
    patch_size_level0: int
    mpp: float | None  # level-0 µm per pixel when the slide (or the sheet) states it


def load_fold_model(checkpoint: str | os.PathLike[str], model_name: str, case_id: str) -> FoldModel:
    """Rebuild the fold's model from checkpoint.pt (the kwargs it was trained with), eval mode."""
    path = Path(checkpoint)
    try:
        ckpt = read_checkpoint(path, model_name)
        scaler = checkpoint_path_scaler(ckpt, str(path))
    except (FileNotFoundError, ValueError) as err:  # name the case the heatmap was drawing
        raise type(err)(f"heatmaps: case {case_id}: {err}") from err
    meta = dict(ckpt["meta"])
    model = create_model(model_name, **meta["model_kwargs_resolved"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return FoldModel(model=model, meta=meta, checkpoint=path, path_scaler=scaler)


def read_case_bag(bags_h5: str | os.PathLike[str], case_id: str) -> CaseBag:
    """One case's features, slide_index and slide ids; a missing or empty bag names the case."""
    path = Path(bags_h5)
    if not path.is_file():
        raise FileNotFoundError(f"heatmaps: case {case_id}: bags file not found: {path}")
    with h5py.File(path, "r") as h5:
        group = h5.get(f"cases/{case_id}")
        if group is None:
            raise KeyError(f"heatmaps: {path}: no bag for case {case_id!r}")
        features = np.asarray(group["features"][()], dtype=np.float32)
        slide_index = np.asarray(group["slide_index"][()], dtype=np.int64)
        slide_ids = [str(s) for s in py_value(group.attrs["slide_ids"])]  # type: ignore[union-attr]
    if features.shape[0] == 0:
        raise ValueError(f"heatmaps: {path}: case {case_id} has 0 patches")
    if slide_index.shape != (features.shape[0],) or slide_index.max() >= len(slide_ids):
        raise ValueError(f"heatmaps: {path}: case {case_id}: slide_index does not fit its slides")
    return CaseBag(case_id, features, slide_index, slide_ids)


def _mpp(attrs: dict[str, Any]) -> float | None:
    """Level-0 MPP when measured (slide metadata or the sheet's mpp), not 10 / objective power."""
    mpp = attrs.get("level0_mpp")
    if attrs.get("mpp_source") not in ("mpp", "user-table") or mpp is None:
        return None
    mpp = float(mpp)  # type: ignore[arg-type]
    return mpp if np.isfinite(mpp) and mpp > 0 else None


def read_slide_coords(
    features_h5: str | os.PathLike[str], slide_id: str, case_id: str, n_expected: int
) -> SlideCoords:
    """Coords of one slide of a case; its patch count must equal the slide's rows in the bag."""
    path = Path(features_h5)
    where = f"heatmaps: case {case_id} slide {slide_id}"
    if not path.is_file():
        raise FileNotFoundError(f"{where}: features file not found: {path}")
    with h5py.File(path, "r") as h5:
        if "coords" not in h5:
            raise KeyError(f"{where}: {path} has no `coords` dataset")
        coords = np.asarray(h5["coords"][()], dtype=np.int64).reshape(-1, 2)
        attrs = {k: py_value(v) for k, v in h5["coords"].attrs.items()}
        attrs = {**{k: py_value(v) for k, v in h5.attrs.items()}, **attrs}
    if len(coords) != n_expected:
        raise ValueError(
            f"{where}: {path} has {len(coords)} patches but the case's bag has {n_expected} "
            "rows for this slide (bags.h5 and the features are out of date with each other)"
        )
    if "patch_size_level0" not in attrs:
        raise KeyError(f"{where}: {path}: coords lack the `patch_size_level0` attribute")
    return SlideCoords(slide_id, coords, int(attrs["patch_size_level0"]), _mpp(attrs))  # type: ignore[arg-type]


def read_omics_table(omics_parquet: str | os.PathLike[str]) -> pd.DataFrame:
    """The cohort's omics table (omics.parquet), case ids as strings."""
    table = pd.read_parquet(omics_parquet)
    table.index = table.index.astype(str)
    return table


def case_omics(
    fold: FoldModel, omics_parquet: str | os.PathLike[str], families_json: str | os.PathLike[str],
    case_id: str, clinical_tsv: str | os.PathLike[str] | None = None, *,
    omics_table: pd.DataFrame | None = None, clinical_table: pd.DataFrame | None = None,
) -> list[torch.Tensor] | None:  # fmt: skip
    """The case's omics blocks as the fold job fed them (its training-fold standardiser).

    None for a pathology-only model, and for a case without omics when the model can score a
    withheld modality (keep_unimodal); otherwise a missing row raises naming the case. A
    *_clinical model's last block is the case's clinical covariates (`clinical_tsv`), encoded
    with the statistics its checkpoint stores. `omics_table` / `clinical_table`: the tables
    already read (`read_omics_table`, `read_clinical`), for a caller scoring several cases.
    """
    model = fold.model
    if "omic" not in getattr(model, "modalities", frozenset()):
        return None
    table = read_omics_table(omics_parquet) if omics_table is None else omics_table
    if case_id not in table.index:
        if getattr(model, "accepts_missing", False):
            return None
        raise KeyError(f"heatmaps: {omics_parquet}: no omics for case {case_id}")
    scaler = Standardizer.from_dict(fold.meta["standardizer"])
    z = scaler.transform(table.loc[[case_id]])
    if fold.meta.get("omic_input") == "unique_genes":
        blocks = [torch.from_numpy(z.to_numpy(dtype=np.float32)[0])]
    else:
        families = read_families_json(families_json)
        blocks = [torch.from_numpy(z[c].to_numpy(dtype=np.float32)[0]) for c in families.values()]
    if "clinical" in getattr(model, "modalities", frozenset()):
        blocks.append(_case_clinical(fold, clinical_tsv, case_id, clinical_table))
    return blocks


def _case_clinical(
    fold: FoldModel,
    clinical_tsv: str | os.PathLike[str] | None,
    case_id: str,
    clinical_table: pd.DataFrame | None = None,
) -> torch.Tensor:
    """A *_clinical model's clinical block of one case, from its checkpoint's encoding."""
    stats = fold.meta.get("clinical")
    if not stats or clinical_tsv is None:
        raise ValueError(
            f"heatmaps: case {case_id}: {fold.checkpoint} reads clinical covariates; it needs "
            "its stored encoding (meta 'clinical') and the clinical table"
        )
    table = read_clinical(clinical_tsv) if clinical_table is None else clinical_table
    row = encode_clinical(
        table, [case_id], stats, clinical_tsv=str(clinical_tsv), model=str(fold.checkpoint)
    )
    return torch.from_numpy(row.to_numpy(dtype=np.float32)[0])


def score_case(
    fold: FoldModel, bag: CaseBag, omics: list[torch.Tensor] | None, seed: int
) -> tuple[dict[str, np.ndarray], float]:
    """The model's per-patch panels (float32, bag order) and its risk of the case (−Σ surv).

    Eval mode, no gradients, every patch of the bag (predictions are scored on the whole bag
    too); torch is seeded with the run's seed so a model with random grouping is repeatable.
    """
    feats = bag.features if fold.path_scaler is None else fold.path_scaler.transform(bag.features)
    path = torch.from_numpy(feats)
    with torch.no_grad():
        torch.manual_seed(seed)
        panels = fold.model.patch_scores(path, omics)
        torch.manual_seed(seed)
        out = fold.model(path, omics)
    risk = float(-out.surv.sum())
    n = bag.features.shape[0]
    result = {}
    for name, values in panels.items():
        arr = values.detach().cpu().numpy().astype(np.float32).reshape(-1)
        if arr.shape != (n,) or not np.all(np.isfinite(arr)):
            raise ValueError(
                f"heatmaps: case {bag.case_id}: panel {name!r} has shape {arr.shape} or "
                f"non-finite values; expected {n} finite scores"
            )
        result[name] = arr
    if not result:
        raise ValueError(f"heatmaps: case {bag.case_id}: the model returned no panel")
    return result, risk


def _slug(name: str) -> str:
    """A family name as an h5 dataset suffix: lower case, runs of other characters → `_`."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or "panel"


def panel_datasets(
    panels: dict[str, np.ndarray], families: list[str]
) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
    """The h5 datasets of a case's panels, their display labels and what `attention` holds.

    `attention` is the model's "attention" panel; for a per-family model (panels "family{j}")
    it is the mean of the family panels, each also kept as `attention_{family}` with the real
    family name from families.json.
    """
    datasets: dict[str, np.ndarray] = {}
    labels: dict[str, str] = {}
    for name, values in panels.items():
        match = re.fullmatch(r"family(\d+)", name)
        if name == "attention":
            key, label = "attention", "attention"
        elif match:
            j = int(match.group(1))
            if j >= len(families):
                raise ValueError(f"heatmaps: panel {name} but only {len(families)} families")
            key, label = f"attention_{_slug(families[j])}", families[j]
        else:
            key, label = f"attention_{_slug(name)}", name
        datasets[key], labels[key] = values, label
    definition = "the model's attention panel"
    if "attention" not in datasets:
        datasets = {"attention": np.mean(list(datasets.values()), axis=0), **datasets}
        definition = f"mean of the {len(labels)} panels {list(labels.values())}"
    return datasets, labels, definition
