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
    """Segment and tile one slide with the `tiling` config, write coords h5 and QC thumbnail.

    A slide without tissue raises (tiling.empty_policy=error) or gets an empty (0, 2) coords
    file with attribute `empty` and a QC thumbnail (skip), so the rest of the run goes on.
    """
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
        snap_to_tiles=float(tiling.get("snap_to_tiles", 0.02)),
        empty_policy=tiling.get("empty_policy", "skip"),
    )
    write_coords_h5(coords_h5, result)
    save_qc_thumbnail(qc_png, result.thumb, result)
    if result.attrs["empty"]:
        log.warning("%s: no tissue tiles; empty coords file written (empty_policy=skip)", slide)
    log.info("%s: %d tiles", slide, len(result.coords))
    return len(result.coords)


def cohort_qc_sheet(
    qc_pngs: Sequence[PathLike],
    coords_h5: Sequence[PathLike],
    slides: Sequence[str],
    out_jpg: PathLike,
) -> int:
    """The report's QC image of a cohort: every slide's overlay, labelled with its tile count.

    Slides with no tile kept (empty tissue mask, or all tiles below min_tissue_fraction) are
    framed in red and logged. Returns how many such slides there are.
    """
    from mmsurv.wsi import qc_contact_sheet, read_coords_h5

    if not len(qc_pngs) == len(coords_h5) == len(slides):
        raise ValueError(f"{len(qc_pngs)} QC images, {len(coords_h5)} coords files, {len(slides)}")
    counts = [len(read_coords_h5(c)[0]) for c in coords_h5]
    empty = [s for s, n in zip(slides, counts, strict=True) if n == 0]
    if empty:
        log.warning("%d slide(s) without any tile (framed in red): %s", len(empty), empty[:20])
    labels = [f"{s} ({n})" for s, n in zip(slides, counts, strict=True)]
    h, w = qc_contact_sheet(list(qc_pngs), labels, out_jpg, flagged=[n == 0 for n in counts])
    log.info("QC sheet of %d slides, %d x %d px -> %s", len(slides), w, h, out_jpg)
    return len(empty)


def extract_features_batch(
    slides: Sequence[PathLike],
    coords: Sequence[PathLike],
    outs: Sequence[PathLike],
    *,
    features: Mapping[str, Any],
    reader: str,
    threads: int = 1,
) -> list[int]:
    """Encode several slides with one encoder load and one loader; one feature h5 per slide.

    The next slide's tiles are read while the current one is encoded; a slide that fails
    (truncated file, too many unreadable tiles) is reported after the others are written.
    """
    import torch

    from mmsurv.features import extract_features

    if not len(slides) == len(coords) == len(outs):
        raise ValueError(f"{len(slides)} slides, {len(coords)} coords files, {len(outs)} outputs")
    torch.set_num_threads(threads)
    counts = extract_features(
        slides,
        coords,
        outs,
        encoder=features["encoder"],
        weights=features["weights"],
        reader=reader,
        batch_size=features["batch_size"],
        num_workers=features["num_workers"],
        device=features["device"],
        precision=features.get("precision", "auto"),
        channels_last=features.get("channels_last", True),
        fast_tiles=features.get("fast_tiles", "aligned"),
        max_bad_tile_fraction=features.get("max_bad_tile_fraction", 0.05),
        prefetch_batches=features.get("prefetch_batches", 4),
        decode_on_device=features.get("decode_on_device", False),
    )
    log.info("%d slides, %d tiles encoded", len(counts), sum(counts))
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
    require_slides: bool = True,
    user_split_csvs: Sequence[PathLike] | None = None,
    complete_cases: bool = True,
) -> pd.DataFrame:
    """Folds over the cases with every required modality: stratified here, or the user's CSVs.

    `require_slides=False` when no configured model uses pathology, so cases without slides
    count. Made folds drop (and log) cases lacking a required modality; user split CSVs (MCAT
    `splits_{k}.csv`, `val` of split k = fold k) are kept as given, so such a case is an error.
    `complete_cases=False` (missing_policy keep_unimodal) folds every case with survival and at
    least one of slides/omics; each training job then keeps the cases its model can use.
    """
    from mmsurv.data import make_folds, read_clinical, write_splits

    clinical = read_clinical(clinical_tsv)
    omics_cases = set(pd.read_parquet(omics_parquet).index.astype(str))
    by_source = {"survival": set(clinical.index), "omics": omics_cases}
    if require_slides:
        by_source["slides"] = set(slide_cases)
    log.info(
        "modalities required: %s (%s)",
        ", ".join(by_source),
        "a configured model uses pathology"
        if require_slides
        else "no configured model uses pathology; cases without slides are kept",
    )
    have = set.intersection(*by_source.values())
    if not complete_cases:
        features = [c for name, c in by_source.items() if name != "survival"]
        have = by_source["survival"] & set.union(*features)
        log.info(
            "missing_policy keep_unimodal: %d case(s) with survival and slides or omics are "
            "folded, %d of them with every modality",
            len(have),
            len(set.intersection(*by_source.values())),
        )
        by_source = {"survival": by_source["survival"], "slides or omics": have}
    if user_split_csvs:
        from mmsurv.byo import user_folds

        splits = user_folds(user_split_csvs, n_folds=n_folds, modalities=by_source)
        unused = sorted(have - set(splits["case_id"]))
        if unused:
            log.warning(
                "%d case(s) with every required modality are in no split CSV and are not used: %s",
                len(unused),
                unused[:20],
            )
        log.info("folds from the user's split CSVs: %s", [str(p) for p in user_split_csvs])
    else:
        anywhere = set.union(*by_source.values())
        for name, cases in by_source.items():
            lacking = sorted(anywhere - cases)
            if lacking:
                log.warning(
                    "%d case(s) dropped for lacking %s: %s", len(lacking), name, lacking[:20]
                )
        if len(have) < n_folds:
            raise ValueError(
                f"{clinical_tsv}: only {len(have)} case(s) have {', '.join(by_source)}; "
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


def _cindex_notes(per_fold: pd.DataFrame, policies: list[str], *, ddof: int) -> list[str]:
    """Table notes: the model-selection policy and how many folds each mean ± std is over."""
    n_folds = per_fold.groupby(["cohort", "model"])["fold"].nunique()
    lo, hi = (int(n_folds.min()), int(n_folds.max())) if len(n_folds) else (0, 0)
    return [
        f"model selection: {', '.join(policies)} (the held-out fold never picks an epoch)",
        f"mean ± sample std (ddof={ddof}) over {lo}–{hi} folds"
        if lo != hi
        else f"mean ± sample std (ddof={ddof}) over {hi} folds",
    ]


def write_cindex_outputs(
    prediction_files: Sequence[PathLike],
    *,
    folds_tsv: PathLike,
    out_csv: PathLike,
    out_md: PathLike,
    model_order: Sequence[str],
    cohort_order: Sequence[str],
    out_prov: PathLike | None = None,
) -> pd.DataFrame:
    """Per-fold c-index TSV plus the mean +- std table (CSV, Markdown) with provenance notes.

    ``out_prov``: where to write the reStructuredText provenance line the report caption
    includes (encoder weights, selection policy and folds as read from the predictions).
    """
    from mmsurv.io import atomic_path
    from mmsurv.tables import fold_cindex, provenance_rst, write_cindex_tables

    preds = read_predictions(prediction_files)
    per_fold = fold_cindex(preds)
    with atomic_path(folds_tsv) as tmp:
        per_fold.to_csv(tmp, sep="\t", index=False)
    if out_prov is not None:
        write_text_atomic(out_prov, provenance_rst(preds))
    notes = _cindex_notes(per_fold, sorted(set(preds["model_selection"])), ddof=1)
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


def read_bin_edges(prediction_files: Sequence[PathLike]) -> dict[tuple[str, str, int], list[float]]:
    """Bin edges per (cohort, model, fold) from the meta.json beside each predictions file."""
    edges: dict[tuple[str, str, int], list[float]] = {}
    for f in prediction_files:
        meta_path = Path(f).parent / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(
                f"{meta_path} is missing: the bin edges of {f} are read from the meta.json that "
                "training writes beside each predictions.parquet"
            )
        meta = json.loads(meta_path.read_text())
        missing = [k for k in ("cohort", "model", "fold", "bin_edges") if k not in meta]
        if missing:
            raise ValueError(f"{meta_path} lacks key(s) {missing}")
        edges[(str(meta["cohort"]), str(meta["model"]), int(meta["fold"]))] = [
            float(x) for x in meta["bin_edges"]
        ]
    return edges


def write_paper_tables(
    folds_tsv: PathLike,
    *,
    outputs: Mapping[str, Mapping[str, PathLike]],
    configured_models: Sequence[str],
    cohort_order: Sequence[str],
    published: Mapping[str, PathLike] | None = None,
    published_map: Mapping[str, str] | None = None,
    out_prov: PathLike | None = None,
    ddof: int = 1,
) -> dict[str, pd.DataFrame]:
    """Table 1 and Table 2 of the paper (CSV, Markdown, LaTeX) from the per-fold c-index TSV.

    ``outputs[key]`` maps "csv", "md" and "tex" to paths for each key of
    :data:`mmsurv.tables.PAPER_TABLES` to write. ``published[key]`` is the CSV with the paper's
    numbers for that table; with ``published_map`` (our cohort -> published column) the tables
    gain paper and delta columns.
    """
    from mmsurv.tables import PAPER_TABLES, provenance_rst, read_published, write_paper_table

    per_fold = pd.read_csv(
        folds_tsv,
        sep="\t",
        dtype={"cohort": str, "model": str, "encoder_weights": str, "model_selection": str},
        keep_default_na=False,
        na_values={"cindex": ["", "NaN", "nan"]},
    )
    unknown = sorted(set(outputs) - set(PAPER_TABLES))
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; known: {sorted(PAPER_TABLES)}")
    notes = _cindex_notes(per_fold, sorted(set(per_fold["model_selection"])), ddof=ddof)
    result = {}
    for key, paths in outputs.items():
        pub = None
        if published_map and published and key in published:
            pub = read_published(published[key])
        result[key] = write_paper_table(
            per_fold,
            PAPER_TABLES[key],
            out_csv=paths["csv"],
            out_md=paths["md"],
            out_tex=paths["tex"],
            configured_models=configured_models,
            cohort_order=cohort_order,
            published=pub,
            published_map=published_map if pub is not None else None,
            notes=notes,
            ddof=ddof,
        )
        log.info("%s: %d rows", key, len(result[key]))
    if out_prov is not None:
        write_text_atomic(out_prov, provenance_rst(per_fold))
    return result


def write_metrics_outputs(
    prediction_files: Sequence[PathLike],
    *,
    out_csv: PathLike,
    out_md: PathLike,
    folds_tsv: PathLike,
    model_order: Sequence[str],
    cohort_order: Sequence[str],
    horizons: Sequence[float] | None = None,
    horizon_quantiles: Sequence[float] = (0.25, 0.5, 0.75),
    ibs_range: Sequence[float] | None = None,
    ibs_points: int = 100,
    n_bootstrap: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
    out_prov: PathLike | None = None,
) -> pd.DataFrame:
    """td-AUC, integrated Brier score and bootstrap CI of the pooled c-index (CSV, Markdown).

    Bin edges come from each fold's meta.json; see :func:`mmsurv.metrics.evaluate_predictions`
    for the definitions. Per-fold values go to ``folds_tsv``. Returns the summary.
    """
    from mmsurv.io import atomic_path
    from mmsurv.metrics import evaluate_predictions
    from mmsurv.tables import derive_notes, metrics_markdown, provenance_rst

    preds = read_predictions(prediction_files)
    per_fold, summary = evaluate_predictions(
        preds,
        read_bin_edges(prediction_files),
        horizons=list(horizons) if horizons else None,
        horizon_quantiles=horizon_quantiles,
        ibs_range=ibs_range,
        ibs_points=ibs_points,
        n_bootstrap=n_bootstrap,
        seed=seed,
        ci_level=ci_level,
        model_order=model_order,
        cohort_order=cohort_order,
    )
    with atomic_path(folds_tsv) as tmp:
        per_fold.to_csv(tmp, sep="\t", index=False, float_format="%.6f")
    write_text_atomic(out_csv, summary.to_csv(index=False, float_format="%.6f"))
    notes = [
        "AUC(t): cumulative/dynamic time-dependent AUC (scikit-survival cumulative_dynamic_auc) "
        "of the predicted death probability 1 − S(t); IBS: integrated Brier score "
        "(scikit-survival integrated_brier_score) of the predicted survival curves, lower is "
        "better (0.25 = predicting S = 0.5 for everyone)",
        "S(t) is the step curve of the discrete-time model: S at the end of each time bin of "
        "the fold (bin edges from the fold's meta.json), 1 before the first bin end",
        "both are computed per fold on its held-out cases, with the censoring distribution "
        "(IPCW) estimated on that fold's training cases; follow-up beyond the last training time "
        "is censored there; shown as mean ± sample std (ddof=1) over folds, (k/n) when only k of "
        "n folds define the value (reasons in the CSV's note column)",
        "horizons: "
        + (
            "configured (evaluation.horizons)"
            if horizons
            else f"quantiles {list(horizon_quantiles)} of each cohort's death times "
            "(evaluation.horizons empty)"
        ),
        f"c-index pooled: one c-index over all out-of-fold risks (each case scored by the fold "
        f"that held it out), {100 * ci_level:g}% percentile bootstrap CI over cases "
        f"({n_bootstrap} resamples, seed {seed})",
    ]
    flagged = summary[
        summary["metric"].isin(["td_auc", "ibs"])
        & summary["note"].astype(str).str.contains("fold ", regex=False)
    ]
    grouped: dict[tuple[str, str], list[str]] = {}  # (what, note) -> models sharing it
    for row in flagged.itertuples():
        what = "IBS" if row.metric == "ibs" else f"AUC({row.horizon:.4g} mo)"
        state = (
            "undefined"
            if pd.isna(row.value)
            else f"{int(row.n_folds_defined)}/{int(row.n_folds)} folds"
        )
        key = (f"{row.cohort} {what}, {state}", str(row.note))
        grouped.setdefault(key, []).append(str(row.model))
    for (head, note), models in grouped.items():
        notes.append(f"{head} ({', '.join(models)}): {note}")
    notes = derive_notes(
        pd.DataFrame(columns=["cohort", "model", "fold"]), notes, predictions=preds
    )
    write_text_atomic(out_md, metrics_markdown(summary, notes))
    if out_prov is not None:
        write_text_atomic(out_prov, provenance_rst(preds))
    return summary


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
    out_prov: PathLike | None = None,
) -> dict[str, Any]:
    """Pool out-of-fold risks, split at the maxstat cutpoint, draw KM and save the statistics.

    ``out_prov``: optional reStructuredText provenance line for the report caption.
    """
    from mmsurv.plots import plot_km
    from mmsurv.stats import km_groups
    from mmsurv.tables import provenance_rst

    preds = read_predictions(prediction_files)
    if out_prov is not None:
        write_text_atomic(out_prov, provenance_rst(preds))
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
    metrics_csv: PathLike | None = None,
) -> None:
    """A one-page Markdown summary of the run's provenance, cohorts, tables and KM statistics.

    With ``metrics_csv`` (the metrics table's CSV) the pooled c-index and its bootstrap CI,
    the td-AUCs and the IBS are listed too.
    """
    from mmsurv.model_catalog import model_inputs

    if any("path" in model_inputs(m) for m in config["training"]["models"]):
        weights = config["features"].get("weights") or "random-init"
        encoder = f"{config['features']['encoder']}, weights: **{weights}**"
    else:
        encoder = "not used (no configured model reads pathology)"
    n_folds = config["splits"]["n_folds"]
    if config["splits"].get("source", "make") == "user":
        folds = f"{n_folds} from the user's split CSVs"
    else:
        folds = f"{n_folds} stratified (seed {config['splits']['seed']})"
    lines = [
        f"# mmsurv run `{config.get('run_name', 'mmsurv')}`",
        "",
        f"- data source: {config['data_source']}",
        f"- encoder: {encoder}",
        f"- model selection: {config['training']['model_selection']}",
        f"- folds: {folds}, epochs: {config['training']['epochs']}, "
        f"training seed {config['training']['seed']}",
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
    if metrics_csv is not None:
        metrics = pd.read_csv(metrics_csv)
        keys = ["cohort", "model", "metric", "horizon", "value", "std", "ci_low", "ci_high"]
        lines += ["", "## More metrics (pooled c-index CI, td-AUC, IBS)", ""]
        lines.append(metrics[keys].to_markdown(index=False, floatfmt=".3f"))
    write_text_atomic(out_md, "\n".join(lines) + "\n")
