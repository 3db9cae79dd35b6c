"""Stage function of rule attribution: IG over every fold of one cohort x model, and its files."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmsurv.attribution.ig import FoldAttribution, attribute_fold, load_fold
from mmsurv.attribution.plot import attribution_bars
from mmsurv.attribution.tables import (
    case_table,
    family_table,
    gene_attributions,
    gene_table,
    position_families,
)
from mmsurv.bags.omics import read_families_json
from mmsurv.io import atomic_path, json_default, write_text_atomic
from mmsurv.model_catalog import model_inputs
from mmsurv.training.setup import resolve_device, seed_everything

log = logging.getLogger(__name__)

__all__ = ["DELTA_WARN", "attribute_model"]

# Captum's convergence delta (sum of a case's attributions minus the risk difference it should
# equal), relative to the mean |risk - baseline risk| over the cohort's held-out cases: above this
# a warning suggests more n_steps. (Per case, a case near the baseline would divide by ~0.)
DELTA_WARN = 0.05


def _relative_delta(results: list[FoldAttribution]) -> np.ndarray:
    """Each case's |delta| over the mean |risk - baseline risk| of all cases."""
    delta = np.concatenate([fa.delta for fa in results])
    moved = np.concatenate([np.abs(fa.risk - fa.baseline_risk) for fa in results])
    scale = float(moved.mean()) if len(moved) else 0.0
    return np.abs(delta) / max(scale, 1e-12)


def _run_folds(
    checkpoints: Sequence[str], n_steps: int, **load: Any
) -> tuple[list[FoldAttribution], list[list[str]], list[str] | None, int]:
    """Attribute every fold's held-out cases; return them, the omics layout and the seed."""
    results: list[FoldAttribution] = []
    layout: tuple[list[list[str]], list[str] | None] | None = None
    seed = -1
    for ckpt in checkpoints:
        fm = load_fold(ckpt, **load)
        try:
            seed = fm.job.seed
            seed_everything(seed)
            if layout is not None and layout != (fm.block_columns, fm.block_families):
                raise ValueError(f"{ckpt}: omics layout differs from the first fold's")
            layout = (fm.block_columns, fm.block_families)
            t0 = time.perf_counter()
            fa = attribute_fold(fm, n_steps)
        finally:
            fm.close()
        log.info(
            "fold %d: %d held-out cases, %d inputs, n_steps %d, %.1f s; max |delta| %.2e",
            fa.fold, len(fa.case_ids), fa.attributions.shape[1], n_steps,
            time.perf_counter() - t0, float(np.abs(fa.delta).max(initial=0.0)),
        )  # fmt: skip
        results.append(fa)
    if layout is None:
        raise ValueError("attribution: no checkpoint given")
    return results, layout[0], layout[1], seed


def _delta_summary(results: list[FoldAttribution], case_ids: list[str]) -> dict[str, Any]:
    """Captum convergence over all cases, with a warning line when it is large."""
    rel = _relative_delta(results)
    delta = np.concatenate([fa.delta for fa in results])
    worst = int(np.argmax(rel)) if len(rel) else 0
    summary = {
        "max_abs_delta": float(np.abs(delta).max(initial=0.0)),
        "median_abs_delta": float(np.median(np.abs(delta))) if len(delta) else 0.0,
        "max_relative_delta": float(rel.max(initial=0.0)),
        "worst_case": case_ids[worst] if case_ids else None,
        "delta_warn": DELTA_WARN,
        "converged": bool(rel.max(initial=0.0) <= DELTA_WARN),
    }
    if not summary["converged"]:
        log.warning(
            "Integrated Gradients: relative delta up to %.3f (case %s) > %.2f; raise "
            "attribution.n_steps, unless the model has a step without gradients (the OT plan of "
            "ours*, on detached costs), whose share of the risk change the delta then measures",
            summary["max_relative_delta"], summary["worst_case"], DELTA_WARN,
        )  # fmt: skip
    return summary


def attribute_model(
    *,
    cohort: str,
    model_name: str,
    checkpoints: Sequence[str],
    omics_parquet: str,
    families_json: str,
    bags_h5: str | None,
    out_dir: str | os.PathLike[str],
    n_steps: int = 32,
    top_genes: int = 20,
    device: str = "cpu",
    num_threads: int | None = None,
    clinical_tsv: str | None = None,
) -> dict[str, Any]:
    """IG of each fold model's risk over its held-out cases; write genes.tsv, families.tsv,
    cases.tsv.gz, bars.png and summary.json under `out_dir`, and return the summary.

    `clinical_tsv`: the clinical table, for a *_clinical model (family 'clinical')."""
    if n_steps < 2:
        raise ValueError(f"attribution.n_steps must be >= 2, got {n_steps}")
    if num_threads:
        torch.set_num_threads(int(num_threads))
    out = Path(out_dir)
    families = read_families_json(families_json)
    results, block_columns, block_families, seed = _run_folds(
        checkpoints, n_steps, cohort=cohort, model_name=model_name,
        omics_parquet=omics_parquet, families_json=families_json, bags_h5=bags_h5,
        device=resolve_device(device), clinical_tsv=clinical_tsv,
    )  # fmt: skip
    if "clinical" in model_inputs(model_name):  # its last block: the encoded covariates
        families = {**families, "clinical": block_columns[-1]}
    attrs = np.concatenate([fa.attributions for fa in results])
    meta = pd.DataFrame(
        {
            "case_id": [c for fa in results for c in fa.case_ids],
            "fold": np.concatenate([np.full(len(fa.case_ids), fa.fold) for fa in results]),
            "seed": seed,
            "risk": np.concatenate([fa.risk for fa in results]),
            "baseline_risk": np.concatenate([fa.baseline_risk for fa in results]),
            "ig_delta": np.concatenate([fa.delta for fa in results]),
        }
    )
    fam_pos = position_families(block_columns, block_families, families)
    genes = gene_attributions(attrs, block_columns)
    gene_tab = gene_table(genes, families)
    fam_tab = family_table(attrs, fam_pos)
    summary = {
        "cohort": cohort,
        "model": model_name,
        "seed": seed,
        "folds": [fa.fold for fa in results],
        "n_cases": len(meta),
        "n_steps": n_steps,
        "omic_input": "unique_genes" if block_families is None else "families",
        "baseline": "mean standardised omics of each fold's training cases",
        **_delta_summary(results, list(meta["case_id"])),
    }
    with atomic_path(out / "genes.tsv") as tmp:
        gene_tab.to_csv(tmp, sep="\t", index=False)
    with atomic_path(out / "families.tsv") as tmp:
        fam_tab.to_csv(tmp, sep="\t", index=False)
    with atomic_path(out / "cases.tsv.gz") as tmp:
        case_table(meta, genes, attrs, fam_pos).to_csv(
            tmp, sep="\t", index=False, compression="gzip"
        )
    conv = f"IG max relative delta {summary['max_relative_delta']:.3f}"
    title = f"{cohort} · {model_name}: Integrated Gradients, {len(meta)} held-out cases · {conv}"
    attribution_bars(fam_tab, gene_tab, top_genes, title, out / "bars.png")
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=json_default))
    return summary
