"""Heatmap stage: choose cases, score their patches, write h5 + GeoJSON + PNG + PDF + TSV."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch
from matplotlib import pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages
from PIL import Image

from mmsurv.bags.data import read_clinical
from mmsurv.bags.omics import read_families_json
from mmsurv.heatmaps.draw import SlideHeat, draw_case
from mmsurv.heatmaps.scores import (
    FoldModel,
    case_omics,
    load_fold_model,
    panel_datasets,
    read_case_bag,
    read_omics_table,
    read_slide_coords,
    score_case,
)
from mmsurv.heatmaps.select import choose_cases, read_heldout_predictions
from mmsurv.io import atomic_path
from mmsurv.model_catalog import model_inputs
from mmsurv.tiling.geojson import patches_geojson, write_geojson
from mmsurv.tiling.wsi import open_slide

log = logging.getLogger(__name__)

PNG_DPI = 110  # a six-panel figure: ~500 px per panel, the thumbnail's detail at its scale

__all__ = ["make_heatmaps"]

PathLike = str | os.PathLike[str]


def _has_patches(bags_h5: PathLike) -> set[str]:
    """Cases of bags.h5 whose bag has at least one patch."""
    with h5py.File(bags_h5, "r") as h5:
        return {c for c, g in h5["cases"].items() if g["features"].shape[0] > 0}


def _fold_model(cache: dict[Path, FoldModel], row: pd.Series, model_name: str) -> FoldModel:
    """The checkpoint beside the case's predictions file (the fold that held it out), checked."""
    ckpt = Path(row["predictions"]).parent / "checkpoint.pt"
    if ckpt not in cache:
        cache[ckpt] = load_fold_model(ckpt, model_name, row["case_id"])
    fold = cache[ckpt]
    meta = fold.meta
    held_out = set(meta.get("test_case_ids", [])) | set(meta.get("unimodal_test_cases", {}))
    if int(meta.get("fold", -1)) != int(row["fold"]) or row["case_id"] not in held_out:
        raise ValueError(
            f"heatmaps: case {row['case_id']}: {ckpt} (fold {meta.get('fold')}) is not the "
            f"job that held it out (fold {row['fold']})"
        )
    return fold


def _thumbnail(path: PathLike, reader: str, px: int) -> tuple[np.ndarray, tuple[int, int]]:
    """An RGB thumbnail at most `px` a side and the slide's level-0 (width, height)."""
    with open_slide(path, reader) as slide:  # type: ignore[arg-type]
        size = tuple(int(v) for v in slide.dimensions)
        thumb = np.asarray(slide.get_thumbnail((px, px)).convert("RGB"))
    return thumb, (size[0], size[1])


def _write_slide_h5(
    path: Path, coords: np.ndarray, datasets: Mapping[str, np.ndarray], attrs: Mapping[str, Any]
) -> None:
    """CLAM-compatible per-slide scores: `coords` (N, 2) level 0, `attention` (N,), panels."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("coords", data=np.asarray(coords, np.int64))
        for key, values in datasets.items():
            h5.create_dataset(key, data=np.asarray(values, np.float32))
        for key, value in attrs.items():
            h5.attrs[key] = value


def _write_pdf(pngs: Sequence[Path], pdf: Path) -> None:
    """The cases' PNGs as the pages of one PDF, in order (an empty PDF when there is none).

    The pages are the PNGs themselves: drawing each figure a second time for a vector PDF
    cost as much as the PNG did (a third of a heatmaps job).
    """
    with atomic_path(pdf) as tmp:
        if not pngs:
            with PdfPages(tmp):
                pass
            return
        images = []
        for png in pngs:
            with Image.open(png) as im:
                images.append(im.convert("RGB"))
        images[0].save(
            tmp, "PDF", save_all=True, append_images=images[1:], resolution=float(PNG_DPI)
        )


def _title(row: pd.Series, model_name: str) -> str:
    """Case id, risk and its group, survival and event, model, fold, seed."""
    outcome = "death" if bool(row["event"]) else "censored"
    return (
        f"{row['case_id']}: {row['group']} risk #{row['rank']} (risk {row['risk']:.3f}), "
        f"survival {row['survival_months']:.1f} months, {outcome}\n"
        f"model {model_name}, fold {int(row['fold'])} (held out), seed {int(row['seed'])}"
    )


def _case(
    row: pd.Series,
    fold: FoldModel,
    *,
    model_name: str,
    cohort: str,
    inputs: Mapping[str, Any],
    slides_dir: Path,
    top_patches: int,
) -> tuple[list[SlideHeat], dict[str, str], dict[str, Any]]:
    """Score one case; write its per-slide h5 and GeoJSON; return what its figure needs."""
    case_id = str(row["case_id"])
    bag = read_case_bag(inputs["bags_h5"], case_id)
    omics = case_omics(
        fold, inputs["omics_parquet"], inputs["families_json"], case_id, inputs["clinical_tsv"],
        omics_table=inputs["omics_table"], clinical_table=inputs["clinical_table"],
    )  # fmt: skip
    panels, risk = score_case(fold, bag, omics, int(row["seed"]))
    if not np.isclose(risk, row["risk"], rtol=1e-4, atol=1e-4):
        log.warning(
            "heatmaps: case %s: risk %.6f from %s differs from predictions (%.6f)",
            case_id, risk, fold.checkpoint, row["risk"],
        )  # fmt: skip
    datasets, labels, definition = panel_datasets(panels, inputs["families"])
    base = {
        "case_id": case_id, "cohort": cohort, "model": model_name, "fold": int(row["fold"]),
        "seed": int(row["seed"]), "risk": float(row["risk"]), "risk_recomputed": risk,
        "survival_months": float(row["survival_months"]), "event": bool(row["event"]),
        "group": str(row["group"]), "rank": int(row["rank"]), "caption": fold.caption,
        "panels": list(datasets), "panel_labels": [labels.get(k, k) for k in datasets],
        "attention_definition": definition, "checkpoint": str(fold.checkpoint),
    }  # fmt: skip
    heats = []
    for i, slide_id in enumerate(bag.slide_ids):
        rows = bag.slide_index == i
        for name, mapping in (("features", inputs["feature_files"]), ("slide", inputs["slides"])):
            if slide_id not in mapping:
                raise KeyError(f"heatmaps: case {case_id}: no {name} file given for {slide_id}")
        sc = read_slide_coords(
            inputs["feature_files"][slide_id], slide_id, case_id, int(rows.sum())
        )
        thumb, size = _thumbnail(inputs["slides"][slide_id], inputs["reader"], inputs["px"])
        scores = {k: v[rows] for k, v in datasets.items()}
        attrs = {
            **base, "slide_id": slide_id, "patch_size_level0": sc.patch_size_level0,
            "mpp": np.nan if sc.mpp is None else sc.mpp, "level0_size": list(size),
        }  # fmt: skip
        _write_slide_h5(slides_dir / f"{slide_id}.h5", sc.coords, scores, attrs)
        collection = patches_geojson(
            sc.coords, sc.patch_size_level0, scores["attention"], top_k=top_patches,
            name="Top attention", slide=slide_id, slide_size=size, score_name="attention",
        )  # fmt: skip
        write_geojson(slides_dir / f"{slide_id}.geojson", collection)
        heats.append(
            SlideHeat(slide_id, thumb, size, sc.coords, sc.patch_size_level0, scores, sc.mpp)
        )
    info = {"risk_recomputed": risk, "n_patches": len(bag.slide_index),
            "slides": ",".join(bag.slide_ids)}  # fmt: skip
    return heats, labels, info


def make_heatmaps(
    *,
    cohort: str,
    model_name: str,
    predictions: Sequence[PathLike],
    bags_h5: PathLike,
    omics_parquet: PathLike,
    families_json: PathLike,
    feature_files: Sequence[PathLike],
    slide_files: Mapping[str, PathLike],
    slides_dir: PathLike,
    figures_dir: PathLike,
    pdf: PathLike,
    tsv: PathLike,
    reader: str = "openslide",
    n_high: int = 3,
    n_low: int = 3,
    top_patches: int = 20,
    thumbnail_px: int = 1024,
    num_threads: int | None = None,
    clinical_tsv: PathLike | None = None,
) -> pd.DataFrame:
    """Heatmaps of the n_high highest- and n_low lowest-risk held-out cases of one model.

    `feature_files`: the cohort's features h5 (stem = slide id, coords of the patches);
    `slide_files`: slide id -> slide file (thumbnails). `predictions`: one seed's
    predictions.parquet of every fold; each case is scored by the checkpoint beside the file
    that holds it out. Writes per slide `{slide_id}.h5` and
    `{slide_id}.geojson` (top_patches highest-attention patches) into `slides_dir`, one
    `{case_id}.png` per case into `figures_dir`, one PDF page per case and the cases' TSV;
    returns that table. `num_threads`: torch's CPU threads (the rule's threads).
    `clinical_tsv`: the clinical table, for a *_clinical model (its covariates' block; its
    per-family panels end with a 'clinical' one).
    """
    if num_threads:
        torch.set_num_threads(int(num_threads))
    slides_dir, figures_dir = Path(slides_dir), Path(figures_dir)
    slides_dir.mkdir(parents=True, exist_ok=True)
    figures_dir.mkdir(parents=True, exist_ok=True)
    pred = read_heldout_predictions(predictions)
    with_patches = _has_patches(bags_h5)
    chosen = choose_cases(pred, n_high, n_low, eligible=with_patches.__contains__)
    reads = model_inputs(model_name)
    inputs = {
        "bags_h5": bags_h5, "omics_parquet": omics_parquet, "families_json": families_json,
        "families": list(read_families_json(families_json))
        + (["clinical"] if "clinical" in reads else []),
        "clinical_tsv": clinical_tsv, "reader": reader,
        # the tables the model reads, once per job (not once per case)
        "omics_table": read_omics_table(omics_parquet) if "omic" in reads else None,
        "clinical_table": (
            read_clinical(clinical_tsv) if "clinical" in reads and clinical_tsv else None
        ),
        "px": thumbnail_px, "feature_files": {Path(f).stem: f for f in feature_files},
        "slides": dict(slide_files),
    }  # fmt: skip
    cache: dict[Path, FoldModel] = {}
    extra = []
    pngs: list[Path] = []
    for _, row in chosen.iterrows():
        fold = _fold_model(cache, row, model_name)
        heats, labels, info = _case(
            row, fold, model_name=model_name, cohort=cohort, inputs=inputs,
            slides_dir=slides_dir, top_patches=top_patches,
        )  # fmt: skip
        fig = draw_case(heats, labels, _title(row, model_name), fold.caption)
        png = figures_dir / f"{row['case_id']}.png"
        with atomic_path(png) as tmp_png:
            fig.savefig(tmp_png, dpi=PNG_DPI)
        plt.close(fig)
        pngs.append(png)
        extra.append({**info, "png": png.name})
        log.info("heatmaps %s %s: case %s (%s risk)", cohort, model_name, row["case_id"],
                 row["group"])  # fmt: skip
    _write_pdf(pngs, Path(pdf))
    table = pd.concat([chosen.drop(columns="predictions"), pd.DataFrame(extra)], axis=1)
    table.insert(0, "model", model_name)
    table.insert(0, "cohort", cohort)
    with atomic_path(tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    return table
