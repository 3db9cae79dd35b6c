"""Stage functions behind the Snakemake scripts: config values in, library calls, files out."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from mmsurv.io import json_default, py_value, write_text_atomic

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def tile_and_save(
    slide: PathLike,
    *,
    coords_h5: PathLike,
    qc_png: PathLike,
    tiling: Mapping[str, Any],
    fallback_mpp: float | None = None,
) -> int:
    """Segment and tile one slide with the `tiling` config, write coords h5 and QC thumbnail."""
    from mmsurv.wsi import SegmentationParams, save_qc_thumbnail, tile_slide, write_coords_h5

    result = tile_slide(
        slide,
        reader=tiling["reader"],
        patch_size=tiling["patch_size"],
        target_magnification=float(tiling["target_magnification"]),
        mag_tolerance=tiling["mag_tolerance"],
        seg=SegmentationParams(**tiling.get("segmentation", {})),
        min_tissue_fraction=tiling["min_tissue_fraction"],
        fallback_mpp=fallback_mpp,
    )
    write_coords_h5(coords_h5, result)
    save_qc_thumbnail(qc_png, result.thumb, result)
    log.info("%s: %d tiles", slide, len(result.coords))
    return len(result.coords)


def extract_features_batch(
    slides: Sequence[PathLike],
    coords: Sequence[PathLike],
    outs: Sequence[PathLike],
    *,
    features: Mapping[str, Any],
    reader: str,
    threads: int = 1,
) -> list[int]:
    """Encode several slides with one encoder load; one feature h5 per slide, each atomic."""
    import torch

    from mmsurv.features import create_encoder, extract_slide_features

    if not len(slides) == len(coords) == len(outs):
        raise ValueError(f"{len(slides)} slides, {len(coords)} coords files, {len(outs)} outputs")
    torch.set_num_threads(threads)
    encoder = create_encoder(features["encoder"], weights=features["weights"])
    counts = []
    for slide, coord, out in zip(slides, coords, outs, strict=True):
        n = extract_slide_features(
            slide,
            coord,
            out,
            encoder=encoder,
            reader=reader,
            batch_size=features["batch_size"],
            num_workers=features["num_workers"],
            device=features["device"],
        )
        log.info("%s: %d tiles encoded (weights: %s)", slide, n, encoder.weights_id)
        counts.append(n)
    return counts


def _read_feature_file(path: PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Features (N, D) and the provenance attributes of one slide's feature h5."""
    with h5py.File(path, "r") as h5:
        if "features" not in h5:
            raise ValueError(f"{path}: no `features` dataset (not a CLAM/TRIDENT feature file?)")
        attrs = {k: py_value(v) for k, v in h5.attrs.items()}
        return np.asarray(h5["features"][()], dtype=np.float32), attrs


def build_case_bags(
    feature_files: Sequence[PathLike],
    slide_table: Sequence[tuple[str, str]],
    out_h5: PathLike,
) -> None:
    """Concatenate the slide feature files of each case (sheet order) into the cohort's bags.h5."""
    from mmsurv.data import write_bags

    by_stem = {Path(f).stem: f for f in feature_files}
    missing = [s for _, s in slide_table if s not in by_stem]
    if missing:
        raise ValueError(f"no feature file for slide(s) {missing[:10]}")
    cases: dict[str, list[tuple[str, np.ndarray]]] = {}
    provenance: dict[str, set[str]] = {"encoder": set(), "weights": set()}
    for case_id, slide_id in slide_table:
        feats, attrs = _read_feature_file(by_stem[slide_id])
        for key in provenance:
            provenance[key].add(str(attrs.get(key, "unknown")))
        cases.setdefault(case_id, []).append((slide_id, feats))
    for key, values in provenance.items():
        if len(values) != 1:
            raise ValueError(f"slides of {out_h5} were encoded with different `{key}`: {values}")
    attrs = {key: values.pop() for key, values in provenance.items()}
    if attrs["weights"] == "random-init":
        log.warning("bags built from features of a random-init encoder (no pretrained weights)")
    write_bags(out_h5, cases, attrs)
    log.info("%s: %d cases from %d slides", out_h5, len(cases), len(slide_table))


def make_cohort_splits(
    *,
    clinical_tsv: PathLike,
    omics_parquet: PathLike,
    slide_cases: Sequence[str],
    out_tsv: PathLike,
    n_folds: int,
    seed: int,
) -> pd.DataFrame:
    """Folds over the cases with slides, omics and survival; the others are listed in the log."""
    from mmsurv.data import make_folds, read_clinical, write_splits

    clinical = read_clinical(clinical_tsv)
    omics_cases = set(pd.read_parquet(omics_parquet).index.astype(str))
    by_source = {"survival": set(clinical.index), "omics": omics_cases, "slides": set(slide_cases)}
    have = set.intersection(*by_source.values())
    anywhere = set.union(*by_source.values())
    for name, cases in by_source.items():
        lacking = sorted(anywhere - cases)
        if lacking:
            log.warning("%d case(s) dropped for lacking %s: %s", len(lacking), name, lacking[:20])
    if len(have) < n_folds:
        raise ValueError(
            f"{clinical_tsv}: only {len(have)} case(s) have slides, omics and survival; "
            f"cannot make {n_folds} folds"
        )
    splits = make_folds(clinical.loc[sorted(have)], n_folds=n_folds, seed=seed)
    write_splits(splits, out_tsv)
    log.info(
        "%d cases in %d folds: %s", len(splits), n_folds, splits["fold"].value_counts().to_dict()
    )
    return splits


def read_predictions(files: Sequence[PathLike]) -> pd.DataFrame:
    """Concatenate out-of-fold prediction parquet files."""
    if not files:
        raise ValueError("no prediction files given")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def write_cindex_outputs(
    prediction_files: Sequence[PathLike],
    *,
    folds_tsv: PathLike,
    out_csv: PathLike,
    out_md: PathLike,
    model_order: Sequence[str],
    cohort_order: Sequence[str],
) -> pd.DataFrame:
    """Per-fold c-index TSV plus the mean +- std table (CSV, Markdown) with provenance notes."""
    from mmsurv.io import atomic_path
    from mmsurv.tables import fold_cindex, write_cindex_tables

    preds = read_predictions(prediction_files)
    per_fold = fold_cindex(preds)
    with atomic_path(folds_tsv) as tmp:
        per_fold.to_csv(tmp, sep="\t", index=False)
    policies = sorted(set(preds["model_selection"]))
    n_folds = per_fold.groupby(["cohort", "model"])["fold"].nunique()
    notes = [
        f"model selection: {', '.join(policies)} (the held-out fold never picks an epoch)",
        f"mean ± sample std (ddof=1) over {int(n_folds.min())}–{int(n_folds.max())} folds",
    ]
    write_cindex_tables(
        per_fold,
        out_csv,
        out_md,
        model_order=list(model_order),
        cohort_order=list(cohort_order),
        notes=notes,
        predictions=preds,
    )
    return per_fold


def km_figure_from_predictions(
    prediction_files: Sequence[PathLike],
    *,
    cohort: str,
    out_png: PathLike,
    out_pdf: PathLike,
    out_json: PathLike,
    minprop: float = 0.1,
    maxprop: float = 0.9,
    n_perm: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Pool out-of-fold risks, split at the maxstat cutpoint, draw KM and save the statistics."""
    from mmsurv.plots import plot_km
    from mmsurv.stats import km_groups

    preds = read_predictions(prediction_files)
    dup = preds["case_id"][preds["case_id"].duplicated()].unique()
    if len(dup):
        raise ValueError(f"{cohort}: case(s) scored by more than one fold: {list(dup[:10])}")
    time = preds["survival_months"].to_numpy(float)
    event = preds["event"].to_numpy(bool)
    risk = preds["risk"].to_numpy(float)
    groups = km_groups(
        time, event, risk, minprop=minprop, maxprop=maxprop, n_perm=n_perm, seed=seed
    )
    model = ", ".join(sorted(set(preds["model"])))
    weights = ", ".join(sorted(set(preds["encoder_weights"].astype(str))))
    plot_km(
        time,
        event,
        risk > groups["cutpoint"],  # the high-risk group, as km_groups splits it
        title=f"{cohort}: {model}, pooled out-of-fold risk",
        cutpoint=groups["cutpoint"],
        p_logrank=groups["logrank_p"],
        p_maxstat=groups["p_maxstat_lau92"],
        out_png=str(out_png),
        out_pdf=str(out_pdf),
        subtitle=f"encoder weights: {weights}",
    )
    scalars = {k: v for k, v in groups.items() if k not in ("maxstat", "logrank")}
    stats = {"cohort": cohort, "model": model, "encoder_weights": weights, **scalars}
    stats["n_events"] = int(event.sum())
    write_text_atomic(out_json, json.dumps(stats, indent=2, default=json_default) + "\n")
    log.info("%s KM: %s", cohort, stats)
    return stats


def write_run_summary(
    out_md: PathLike,
    *,
    config: Mapping[str, Any],
    cindex_csv: PathLike,
    km_stats: Sequence[PathLike],
    splits: Sequence[PathLike],
) -> None:
    """A one-page Markdown summary of the run's provenance, cohorts, table and KM statistics."""
    weights = config["features"].get("weights") or "random-init"
    lines = [
        f"# mmsurv run `{config.get('run_name', 'mmsurv')}`",
        "",
        f"- data source: {config['data_source']}",
        f"- encoder: {config['features']['encoder']}, weights: **{weights}**",
        f"- model selection: {config['training']['model_selection']}",
        f"- folds: {config['splits']['n_folds']} (seed {config['splits']['seed']}), "
        f"epochs: {config['training']['epochs']}, training seed {config['training']['seed']}",
        "",
        "## Cohorts",
        "",
        "| cohort | cases in folds |",
        "|---|---|",
    ]
    for path in splits:
        table = pd.read_csv(path, sep="\t", dtype={"case_id": str})
        lines.append(f"| {Path(path).parent.name} | {len(table)} |")
    lines += ["", "## c-index (mean ± std)", ""]
    table = pd.read_csv(cindex_csv)
    lines.append(table.to_markdown(index=False))
    lines += ["", "## Kaplan-Meier (maxstat cutpoint)", ""]
    rows = [json.loads(Path(p).read_text()) for p in km_stats]
    keys = ["cohort", "model", "cutpoint", "statistic", "p_maxstat_lau92", "p_maxstat_perm"]
    keys += ["logrank_p", "n_low", "n_high"]
    lines.append(pd.DataFrame(rows)[keys].to_markdown(index=False))
    write_text_atomic(out_md, "\n".join(lines) + "\n")
