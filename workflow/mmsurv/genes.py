"""Gene families and omics column names: the one convention every stage reads and writes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

MODALITIES: tuple[str, ...] = ("rnaseq", "cnv", "mut")


def load_gene_families(csv_path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read the gene-family CSV (one column per family) so families keep the CSV's order."""
    path = Path(csv_path)
    if not path.is_file():
        raise FileNotFoundError(f"gene families CSV not found: {path}")
    table = pd.read_csv(path, dtype=str)
    if table.shape[1] == 0:
        raise ValueError(f"{path}: no family columns")
    families: dict[str, list[str]] = {}
    for family in table.columns:
        genes = [g.strip() for g in table[family].dropna() if g.strip()]
        if not genes:
            raise ValueError(f"{path}: family {family!r} lists no genes")
        families[str(family)] = list(dict.fromkeys(genes))  # de-duplicated, order kept
    return families


def split_column(column: str, modalities: Sequence[str] = MODALITIES) -> tuple[str, str] | None:
    """Split an omics column `<GENE>_<mod>` into (gene, mod); None when it has no known suffix."""
    gene, sep, mod = column.rpartition("_")
    if not sep or not gene or mod not in modalities:
        return None
    return gene, mod
