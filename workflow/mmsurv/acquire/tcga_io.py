"""Reading TCGA-style TSVs (cBioPortal, GDC, TCGA-CDR): missing markers, headers, checks."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

MISSING_MARKERS: list[str] = [
    "",
    "NA",
    "N/A",
    "NaN",
    "nan",
    "#N/A",
    "[Not Available]",
    "[Not Applicable]",
    "[Not Evaluated]",
    "[Unknown]",
    "[Discrepancy]",
]
"""Cell values read as missing in cBioPortal, GDC and TCGA-CDR tables."""


class TCGAFormatError(ValueError):
    """An input file that does not have the expected layout; the message names file and field."""


def require_file(path: PathLike) -> Path:
    """The path as a Path, or FileNotFoundError naming it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"input file not found: {p}")
    return p


def _n_hash_lines(path: Path) -> int:
    """Number of leading lines starting with '#' (cBioPortal headers, MAF version, GDC model)."""
    n = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            n += 1
    return n


def read_tsv(path: Path, **kwargs: object) -> pd.DataFrame:
    """Read a tab-separated file after its leading '#' lines, with TCGA missing markers as NaN."""
    return pd.read_csv(
        path,
        sep="\t",
        skiprows=_n_hash_lines(path),
        na_values=MISSING_MARKERS,
        keep_default_na=False,
        low_memory=False,
        **kwargs,  # type: ignore[arg-type]
    )


def need_columns(table: pd.DataFrame, columns: Sequence[str], path: PathLike) -> None:
    """Raise TCGAFormatError naming the file and the columns it lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise TCGAFormatError(
            f"{path}: missing column(s) {missing}; it has {list(table.columns)[:15]}"
        )


def numeric_frame(table: pd.DataFrame, path: PathLike) -> pd.DataFrame:
    """The table as float64, or TCGAFormatError naming the first non-numeric column and value."""
    out = table.apply(pd.to_numeric, errors="coerce")
    bad = out.isna() & table.notna()
    if bad.to_numpy().any():
        col = bad.any(axis=0).idxmax()
        row = bad[col].idxmax()
        raise TCGAFormatError(
            f"{path}: non-numeric value {table.at[row, col]!r} in column {col!r} (row {row!r})"
        )
    return out.astype(np.float64)


def dedup_genes(table: pd.DataFrame, path: PathLike) -> pd.DataFrame:
    """Drop rows without a gene symbol and keep the first row of a repeated symbol (logged)."""
    no_symbol = table.index.isna() | (table.index.astype(str).str.strip() == "")
    if no_symbol.any():
        log.info("%s: dropped %d row(s) without a gene symbol", path, int(no_symbol.sum()))
        table = table[~no_symbol]
    dup = table.index.duplicated(keep="first")
    if dup.any():
        log.warning(
            "%s: %d repeated gene symbol(s), first row kept: %s",
            path,
            int(dup.sum()),
            sorted(set(table.index[dup]))[:20],
        )
        table = table[~dup]
    table.index = table.index.astype(str).str.strip()
    return table
