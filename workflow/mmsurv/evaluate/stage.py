"""Evaluation stage: c-index, paper tables, metrics and KM figures from predictions."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mmsurv.evaluate.cindex_tables import (
    derive_notes,
    fold_cindex,
    provenance_rst,
    write_cindex_tables,
)
from mmsurv.evaluate.metrics import evaluate_predictions
from mmsurv.evaluate.metrics_table import metrics_markdown, no_event_folds
from mmsurv.evaluate.paper_tables import PAPER_TABLES, read_published, write_paper_table
from mmsurv.evaluate.runs import (
    DEFAULT_SEED,
    is_leaky,
    leaky_note,
    runs_phrase,
    seed_mean_risk,
    with_seed,
)
from mmsurv.evaluate.stats import honest_km_groups, km_groups
from mmsurv.io import atomic_path, json_default, write_text_atomic

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def read_predictions(files: Sequence[PathLike]) -> pd.DataFrame:
    """Concatenate out-of-fold prediction parquet files."""
    if not files:
        raise ValueError("no prediction files given")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _cindex_notes(per_fold: pd.DataFrame, policies: list[str], *, ddof: int) -> list[str]:
    """Table notes: the model-selection policy, how many fold x seed runs each mean ± std is
    over, and (best_test_epoch_leaky) the leaky note with the gap to the last epoch."""
    defined = per_fold[per_fold["cindex"].notna()] if "cindex" in per_fold else per_fold
    kind = "sample std" if ddof == 1 else "population std"
    leaky = leaky_note(per_fold)
    return [
        f"model selection: {', '.join(policies)}"
        + ("" if leaky else " (the held-out fold never picks an epoch)"),
        f"mean ± {kind} (ddof={ddof}) over {runs_phrase(defined)}",
        *([leaky] if leaky else []),
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
    ddof: int = 1,
) -> pd.DataFrame:
    """Per-fold c-index TSV plus the mean +- std table (CSV, Markdown) with provenance notes.

    ``out_prov``: where to write the reStructuredText provenance line the report caption
    includes (encoder weights, selection policy and folds as read from the predictions).
    A fold whose c-index is undefined (no event held out) reads NaN in the TSV; the table
    averages the other folds and says so in a † note.
    """
    preds = read_predictions(prediction_files)
    per_fold = fold_cindex(preds)
    with atomic_path(folds_tsv) as tmp:
        per_fold.to_csv(tmp, sep="\t", index=False, na_rep="NaN")  # NaN: undefined c-index
    if out_prov is not None:
        write_text_atomic(out_prov, provenance_rst(preds))
    notes = _cindex_notes(per_fold, sorted(set(preds["model_selection"])), ddof=ddof)
    write_cindex_tables(
        per_fold,
        out_csv,
        out_md,
        model_order=list(model_order),
        cohort_order=list(cohort_order),
        notes=notes,
        predictions=preds,
        ddof=ddof,
    )
    return per_fold


def read_bin_edges(
    prediction_files: Sequence[PathLike],
) -> dict[tuple[str, str, int, int], list[float]]:
    """Bin edges per (cohort, model, fold, seed) from the meta.json beside each predictions file."""
    edges: dict[tuple[str, str, int, int], list[float]] = {}
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
        seed = int(meta.get("seed", DEFAULT_SEED))  # as with_seed reads seedless predictions
        key = (str(meta["cohort"]), str(meta["model"]), int(meta["fold"]), seed)
        edges[key] = [float(x) for x in meta["bin_edges"]]
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
    paired: PathLike | None = None,
) -> dict[str, pd.DataFrame]:
    """Table 1 and Table 2 of the paper (CSV, Markdown, LaTeX) from the per-fold c-index TSV.

    ``outputs[key]`` maps "csv", "md" and "tex" to paths for each key of
    :data:`paper_tables.PAPER_TABLES` to write. ``published[key]`` is the CSV with the paper's
    numbers for that table; with ``published_map`` (our cohort -> published column) the tables
    gain paper and delta columns. ``paired`` (tables/paired.csv) marks § the cells whose paired
    Wilcoxon p against the KM model is below 0.05; None: no marks.
    """
    per_fold = pd.read_csv(
        folds_tsv,
        sep="\t",
        dtype={"cohort": str, "model": str, "encoder_weights": str, "model_selection": str},
        keep_default_na=False,
        na_values={c: ["", "NaN", "nan"] for c in ("cindex", "last_epoch_cindex")},
    )
    unknown = sorted(set(outputs) - set(PAPER_TABLES))
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; known: {sorted(PAPER_TABLES)}")
    notes = _cindex_notes(per_fold, sorted(set(per_fold["model_selection"])), ddof=ddof)
    paired_runs = (
        pd.read_csv(paired, dtype={"cohort": str, "model": str, "reference": str})
        if paired is not None
        else None
    )
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
            paired=paired_runs,
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
    ddof: int = 1,
) -> pd.DataFrame:
    """td-AUC, integrated Brier score and bootstrap CI of the pooled c-index (CSV, Markdown).

    Bin edges come from each fold's meta.json; see :func:`metrics.evaluate_predictions`
    for the definitions. Per-fold values go to ``folds_tsv``. Returns the summary.
    """
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
        ddof=ddof,
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
        "is censored there; shown as mean ± "
        + ("sample std" if ddof == 1 else "population std")
        + f" (ddof={ddof}) over {runs_phrase(preds)}, (k/n) when only k of "
        "n runs define the value (reasons in the CSV's note column)",
        "horizons: "
        + (
            "configured (evaluation.horizons)"
            if horizons
            else f"quantiles {list(horizon_quantiles)} of each cohort's death times "
            "(evaluation.horizons empty)"
        ),
        f"c-index pooled: one c-index over all out-of-fold risks (each case scored by the fold "
        "that held it out; with several training seeds, its risk averaged over the seeds), "
        f"{100 * ci_level:g}% percentile bootstrap CI over cases "
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
    flagged, no_event_notes = no_event_folds(preds)
    notes = derive_notes(
        pd.DataFrame(columns=["cohort", "model", "fold"]), notes + no_event_notes, predictions=preds
    )
    write_text_atomic(out_md, metrics_markdown(summary, notes, flagged=flagged))
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
    train_risk_files: Sequence[PathLike] | None = None,
) -> dict[str, Any]:
    """Pool out-of-fold risks, split at the maxstat cutpoint, draw KM and save the statistics.

    With ``train_risk_files`` (each fold run's train_risks.parquet) the figure has a second
    panel, the honest split (:func:`honest_km`), and km_stats.json its numbers under
    ``honest``. With several training seeds each case's risk is its mean over the seeds
    (runs.seed_mean_risk) in both panels.
    ``out_prov``: optional reStructuredText provenance line for the report caption.
    """
    # Imported here, not at module level: plots loads matplotlib (about a second, and it sets
    # the Agg backend), which the table rules importing mmsurv.evaluate do not need.
    from mmsurv.evaluate.plots import OPTIMISTIC_LABEL, plot_km, plot_km_two_ways

    every_seed = read_predictions(prediction_files)
    if out_prov is not None:
        write_text_atomic(out_prov, provenance_rst(every_seed))
    twice = with_seed(every_seed).duplicated(["case_id", "seed"])
    if twice.any():
        dup = every_seed.loc[twice, "case_id"].unique()
        raise ValueError(f"{cohort}: case(s) scored by more than one fold: {list(dup[:10])}")
    preds = seed_mean_risk(every_seed)  # one risk per case: the mean over the seeds
    seeds = sorted(int(x) for x in with_seed(every_seed)["seed"].unique())
    honest = None
    if train_risk_files is not None:
        train = read_predictions(train_risk_files)
        honest = honest_km(every_seed, train, minprop=minprop, maxprop=maxprop)
    time = preds["survival_months"].to_numpy(float)
    event = preds["event"].to_numpy(bool)
    risk = preds["risk"].to_numpy(float)
    groups = km_groups(
        time, event, risk, minprop=minprop, maxprop=maxprop, n_perm=n_perm, seed=seed
    )
    model = ", ".join(sorted(set(preds["model"])))
    weights = ", ".join(sorted(set(preds["encoder_weights"].astype(str))))
    runs = f", mean over {len(seeds)} seeds" if len(seeds) > 1 else ""
    leaky = " (leaky: epochs chosen on the held-out fold)" if is_leaky(every_seed) else ""
    labels = {
        "title": f"{cohort}: {model}, pooled out-of-fold risk{runs}{leaky}",
        "cutpoint": groups["cutpoint"],
        "p_logrank": groups["logrank_p"],
        "p_maxstat": groups["p_maxstat_lau92"],
        "out_png": str(out_png),
        "out_pdf": str(out_pdf),
        "subtitle": f"encoder weights: {weights}",
    }
    high = risk > groups["cutpoint"]  # the high-risk group, as km_groups splits it
    if honest is None:
        plot_km(time, event, high, **labels)
    else:
        plot_km_two_ways(
            time,
            event,
            high,
            honest.pop("high"),
            honest_cutpoints=honest["cutpoints"],
            honest_p_logrank=honest["logrank_p"],
            **labels,
        )
    scalars = {k: v for k, v in groups.items() if k not in ("maxstat", "logrank")}
    stats = {"cohort": cohort, "model": model, "encoder_weights": weights, **scalars}
    stats["n_events"] = int(event.sum())
    stats["seeds"] = seeds
    stats["leaky"] = bool(leaky)  # best_test_epoch_leaky: epochs chosen on the held-out fold
    stats["optimistic_label"] = OPTIMISTIC_LABEL
    if honest is not None:
        stats["honest"] = honest
    write_text_atomic(out_json, json.dumps(stats, indent=2, default=json_default) + "\n")
    log.info("%s KM: %s", cohort, stats)
    return stats


def _seed_mean_train(train: pd.DataFrame) -> pd.DataFrame:
    """One row per fold x training case: its risk averaged over the seeds of that fold's runs."""
    frame = with_seed(train)
    twice = frame.duplicated(["fold", "case_id", "seed"])
    if twice.any():
        first = frame.loc[twice, ["fold", "case_id", "seed"]].iloc[0].tolist()
        raise ValueError(f"train risks list (fold, case_id, seed) {first} more than once")
    grouped = frame.groupby(["fold", "case_id"], sort=False)
    out = grouped[["survival_months", "event"]].first()
    out["risk"] = grouped["risk"].mean()
    if "inner_val" in frame:
        out["inner_val"] = grouped["inner_val"].any()  # in some seed's inner validation
    return out.reset_index()


def honest_km(
    preds: pd.DataFrame, train: pd.DataFrame, *, minprop: float = 0.1, maxprop: float = 0.9
) -> dict[str, Any]:
    """Each fold's maxstat cutpoint on its training cases' risks, applied to its held-out cases.

    ``preds``: the fold runs' predictions; ``train``: their train_risks.parquet rows. With
    several seeds, each case's risk is its mean over the seeds, on both sides (an ensemble of
    each fold's seed runs, still fitted on that fold's training cases only), and each seed's
    own result is under ``by_seed``. Refuses a fold whose training rows include one of its
    held-out cases. Returns :func:`stats.honest_km_groups`'s result (``high`` in the row order
    of ``runs.seed_mean_risk(preds)``).
    """
    from mmsurv.evaluate.plots import HONEST_LABEL  # matplotlib: see km_figure_from_predictions

    preds, train = with_seed(preds), with_seed(train)
    _check_no_leak(preds, train)
    seeds = sorted(int(x) for x in preds["seed"].unique())
    by_seed = {}
    for s in seeds if len(seeds) > 1 else []:
        res = _honest_one_run(
            preds[preds["seed"] == s], train[train["seed"] == s], minprop, maxprop
        )
        by_seed[s] = {k: res[k] for k in ("logrank_p", "n_low", "n_high", "cutpoints")}
    train_mean = _seed_mean_train(train[train["seed"].isin(seeds)])
    res = _honest_one_run(seed_mean_risk(preds), train_mean, minprop, maxprop)
    res["label"] = HONEST_LABEL
    res["seeds"] = seeds
    res["n_train_rows"] = len(train_mean)
    res["inner_val_rows"] = int(train_mean["inner_val"].sum()) if "inner_val" in train else 0
    if by_seed:
        res["by_seed"] = by_seed
    return res


def _check_no_leak(preds: pd.DataFrame, train: pd.DataFrame) -> None:
    """Refuse training-case risks of a fold that include one of that fold's held-out cases."""
    held = preds.groupby("fold")["case_id"].apply(set).to_dict()
    for fold, rows in train.groupby("fold"):
        leaked = set(rows["case_id"]) & held.get(fold, set())
        if leaked:
            raise ValueError(
                f"train risks of fold {fold} include its held-out case(s) {sorted(leaked)[:10]}"
            )


def _honest_one_run(
    preds: pd.DataFrame, train: pd.DataFrame, minprop: float, maxprop: float
) -> dict[str, Any]:
    """honest_km_groups on fold runs with one risk per case (one seed, or the seed means)."""
    return honest_km_groups(
        train["fold"].to_numpy(),
        train["risk"].to_numpy(float),
        train["survival_months"].to_numpy(float),
        train["event"].to_numpy(bool),
        preds["fold"].to_numpy(),
        preds["risk"].to_numpy(float),
        preds["survival_months"].to_numpy(float),
        preds["event"].to_numpy(bool),
        minprop=minprop,
        maxprop=maxprop,
    )
