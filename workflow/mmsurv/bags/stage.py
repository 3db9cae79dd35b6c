"""Bag stage: per-case patch bags and cross-validation folds for the bags rules."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from mmsurv.io import atomic_path, py_value

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


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
    from mmsurv.bags.data import write_bags

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
    cohort: str | None = None,
    out_dropped: PathLike | None = None,
    omics_missing_json: PathLike | None = None,
    site_preserved: bool = False,
) -> pd.DataFrame:
    """Folds over the cases with every required modality: stratified here, or the user's CSVs.

    `require_slides=False` when no configured model uses pathology, so cases without slides
    count. Made folds drop (and log) cases lacking a required modality; user split CSVs (MCAT
    `splits_{k}.csv`, `val` of split k = fold k) are kept as given, so such a case is an error.
    `complete_cases=False` (missing_policy keep_unimodal) folds every case with survival and at
    least one of slides/omics; each training job then keeps the cases its model can use.
    ``cohort`` names the cohort in messages (default: the folder of ``out_tsv``). A held-out
    fold without an event (or without a comparable pair) is logged as a warning: its c-index
    is undefined, and the tables show it as NaN. The cases left out, with why, go to
    ``out_dropped`` (TSV ``case_id``, ``reason``) and a one-line warning on the console;
    ``omics_missing_json`` (omics_bags' counts) names the cases bags.omics_impute drop_case
    removed. ``site_preserved`` (splits.source site) keeps each tissue source site inside one
    held-out fold (`bags.sites`), falling back to case-level folds with a warning where it cannot.
    """
    from mmsurv.bags.data import make_folds, read_clinical, write_splits

    cohort = cohort or Path(out_tsv).parent.name

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
    sources = dict(by_source)
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
        from mmsurv.acquire.byo import user_folds

        splits = user_folds(user_split_csvs, n_folds=n_folds, modalities=by_source)
        unused = sorted(have - set(splits["case_id"]))
        dropped = _lacking_cases(sources, have, omics_missing_json)  # in no split CSV
        dropped.update({c: "in no split CSV" for c in unused})
        if unused:
            log.warning(
                "%d case(s) with every required modality are in no split CSV and are not used: %s",
                len(unused),
                unused[:20],
            )
        log.info("folds from the user's split CSVs: %s", [str(p) for p in user_split_csvs])
    else:
        dropped = _lacking_cases(sources, have, omics_missing_json)
        if len(have) < n_folds:
            raise ValueError(
                f"cohort {cohort}: splits.n_folds={n_folds} but only {len(have)} case(s) have "
                f"{', '.join(by_source)} ({clinical_tsv}); each held-out fold needs at least one "
                f"case: lower splits.n_folds to at most {len(have)} or add cases"
            )
        kept = clinical.loc[sorted(have)]
        splits = _site_folds(kept, clinical_tsv, n_folds, seed) if site_preserved else None
        if splits is None:
            splits = make_folds(kept, n_folds=n_folds, seed=seed)
    warn_undefined_folds(splits, clinical, cohort)
    write_splits(splits, out_tsv)
    report_dropped(dropped, cohort, out_dropped)
    log.info(
        "%d cases in %d folds: %s", len(splits), n_folds, splits["fold"].value_counts().to_dict()
    )
    return splits


def _site_folds(
    clinical: pd.DataFrame, clinical_tsv: PathLike, n_folds: int, seed: int
) -> pd.DataFrame | None:
    """Site-preserved folds, or None (warned) when a site is too big or sites are too few."""
    from mmsurv.bags.sites import case_sites, make_site_folds

    return make_site_folds(clinical, case_sites(clinical, clinical_tsv), n_folds=n_folds, seed=seed)


def _lacking_cases(
    by_source: dict[str, set[str]], have: set[str], omics_missing_json: PathLike | None
) -> dict[str, str]:
    """Each case some source has but the folds leave out -> the sources it lacks (logged)."""
    impute_dropped: set[str] = set()
    if omics_missing_json is not None:
        doc = json.loads(Path(omics_missing_json).read_text())
        impute_dropped = {str(c) for c in doc.get("dropped_cases", [])}
    out: dict[str, str] = {}
    for case in sorted(set.union(*by_source.values()) - have):
        why = [f"no {name}" for name, cases in by_source.items() if case not in cases]
        if case in impute_dropped:
            why = [w if w != "no omics" else "omics values missing (drop_case)" for w in why]
        out[case] = "; ".join(why)
    for why, cases in pd.Series(out, dtype=str).groupby(lambda c: out[c]):
        log.warning("%d case(s) dropped for %s: %s", len(cases), why, list(cases.index)[:20])
    return out


def report_dropped(dropped: dict[str, str], cohort: str, out_tsv: PathLike | None) -> None:
    """Write the left-out cases (case_id, reason) and say so in one line on the console."""
    table = pd.DataFrame({"case_id": list(dropped), "reason": list(dropped.values())})
    if out_tsv is not None:
        with atomic_path(out_tsv) as tmp:
            table.to_csv(tmp, sep="\t", index=False)
    if not dropped:
        return
    counts = ", ".join(f"{why}: {n}" for why, n in table["reason"].value_counts().items())
    where = f"; listed in {out_tsv}" if out_tsv is not None else ""
    # setup_logging sends stderr to the job log; the original stderr is Snakemake's console.
    print(
        f"mmsurv WARNING cohort {cohort}: {len(dropped)} case(s) left out of the folds "
        f"({counts}){where}",
        file=sys.__stderr__ or sys.stderr,
        flush=True,
    )


def _has_comparable_pair(time: np.ndarray, event: np.ndarray) -> bool:
    """Whether Harrell's c-index is defined: an event before another time (or a tied censoring)."""
    return any(((time > t) | ((time == t) & ~event)).any() for t in np.unique(time[event]))


def warn_undefined_folds(splits: pd.DataFrame, clinical: pd.DataFrame, cohort: str) -> list[int]:
    """Warn for each held-out fold whose c-index will be undefined; return those folds."""
    labels = clinical.reindex(splits["case_id"].astype(str))
    labels = labels.assign(fold=splits["fold"].to_numpy()).dropna(subset=["event"])
    undefined = []
    for fold, g in labels.groupby("fold", sort=True):
        event = g["event"].to_numpy(dtype=bool)
        time = g["survival_months"].to_numpy(dtype=float)
        if not event.any():
            why = f"no event among its {len(g)} held-out cases"
        elif not _has_comparable_pair(time, event):
            why = (
                f"no comparable pair among its {len(g)} held-out cases "
                "(no event precedes another time)"
            )
        else:
            continue
        log.warning(
            "cohort %s fold %d: %s; its c-index is undefined (NaN in the tables)",
            cohort,
            fold,
            why,
        )
        undefined.append(int(fold))
    return undefined
