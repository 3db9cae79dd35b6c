"""The pipeline's clinical and omics TSVs and report tables, written by TCGA and BYO alike."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mmsurv.acquire.survival import SurvivalTable
from mmsurv.genes import MODALITIES
from mmsurv.io import atomic_path

PathLike = str | os.PathLike[str]


def write_table(table: pd.DataFrame, path: PathLike, *, index: bool = False) -> None:
    """Write a TSV report table atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=index, lineterminator="\n")


def write_clinical(survival: pd.DataFrame | SurvivalTable, path: PathLike) -> None:
    """Write the pipeline's clinical TSV (case_id, survival_months, event 0/1, extra columns)."""
    table = survival.table if isinstance(survival, SurvivalTable) else survival
    missing = [c for c in ("survival_months", "event") if c not in table.columns]
    if missing:
        raise ValueError(f"clinical table for {path} lacks column(s) {missing}")
    out = table.copy()
    out["event"] = out["event"].astype(bool).astype(int)
    extra = [c for c in out.columns if c not in ("survival_months", "event")]
    out = out[["survival_months", "event", *extra]].sort_index()
    out.index = out.index.astype(str)
    out.index.name = "case_id"
    with atomic_path(path) as tmp:
        out.to_csv(tmp, sep="\t", lineterminator="\n")


def write_omics(omics: pd.DataFrame, path: PathLike) -> None:
    """Write the pipeline's omics TSV (case_id, then `<GENE>_<modality>` float columns)."""
    bad = [c for c in omics.columns if c.rpartition("_")[2] not in MODALITIES]
    if bad:
        raise ValueError(
            f"omics table for {path}: columns {bad[:10]} lack a _rnaseq/_cnv/_mut suffix"
        )
    out = omics.astype(np.float64).sort_index()
    out.index = out.index.astype(str)
    out.index.name = "case_id"
    with atomic_path(path) as tmp:
        out.to_csv(tmp, sep="\t", lineterminator="\n")
