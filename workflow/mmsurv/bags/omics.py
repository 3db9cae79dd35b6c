"""Genomics inputs: gene families, their omics columns, and training-fold standardisation."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmsurv.genes import MODALITIES, load_gene_families, split_column
from mmsurv.io import atomic_path, write_text_atomic

log = logging.getLogger(__name__)


def family_columns(
    columns: Iterable[str],
    families: dict[str, list[str]],
    modalities: Sequence[str] = MODALITIES,
) -> dict[str, list[str]]:
    """Map each family to the omics columns of its genes (MCAT's `<GENE>_<mod>` convention)."""
    columns = list(columns)
    out: dict[str, list[str]] = {}
    for family, genes in families.items():
        gene_set = set(genes)
        cols = []
        for col in columns:
            parsed = split_column(col, modalities)
            if parsed is not None and parsed[0] in gene_set:
                cols.append(col)
        if not cols:
            raise ValueError(
                f"gene family {family!r} has no omics columns "
                f"(looked for <GENE>_{{{','.join(modalities)}}} among {len(columns)} columns)"
            )
        out[family] = cols
    return out


def read_omics_table(omics_tsv: str | os.PathLike[str]) -> pd.DataFrame:
    """Read the omics TSV (case_id index, numeric gene columns), rejecting malformed tables."""
    path = Path(omics_tsv)
    if not path.is_file():
        raise FileNotFoundError(f"omics table not found: {path}")
    table = pd.read_csv(path, sep="\t", dtype={"case_id": str})
    if "case_id" not in table.columns:
        raise ValueError(f"{path}: missing column 'case_id'")
    dup = table["case_id"][table["case_id"].duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"{path}: duplicated case ids: {dup[:20]}")
    table = table.set_index("case_id")
    non_numeric = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if non_numeric:
        raise ValueError(f"{path}: non-numeric gene columns: {non_numeric[:20]}")
    table = table.astype(np.float64)
    inf = np.isinf(table.to_numpy())
    if inf.any():
        cols = table.columns[inf.any(axis=0)].tolist()
        cases = table.index[inf.any(axis=1)].tolist()
        raise ValueError(
            f"{path}: {int(inf.sum())} infinite value(s) (inf/-inf) in gene column(s) "
            f"{cols[:20]} of case(s) {cases[:20]}; fix them, or leave the cells empty to have "
            "them handled by bags.omics_impute"
        )
    return table


IMPUTE_POLICIES = ("mean", "drop_case", "error")


def _zero_variance(frame: pd.DataFrame) -> list[str]:
    """Columns with fewer than two distinct present values (they carry no information)."""
    return [c for c in frame.columns if not (frame[c].nunique(dropna=True) > 1)]


def missing_counts(frame: pd.DataFrame) -> tuple[dict[str, int], dict[str, int]]:
    """Missing (NaN) cells per case and per column, only those with at least one, in order."""
    na = frame.isna()
    by_case, by_col = na.sum(axis=1), na.sum(axis=0)
    return (
        {str(k): int(v) for k, v in by_case[by_case > 0].items()},
        {str(k): int(v) for k, v in by_col[by_col > 0].items()},
    )


def apply_impute_policy(
    kept: pd.DataFrame, policy: str, where: str | os.PathLike[str]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Apply bags.omics_impute to the table's missing cells; return it and the counts (JSON).

    mean keeps the cells missing (each training job imputes its training-fold mean), drop_case
    leaves out every case with one, error refuses the table naming the cases and columns.
    """
    if policy not in IMPUTE_POLICIES:
        raise ValueError(f"bags.omics_impute={policy!r}; choose one of {list(IMPUTE_POLICIES)}")
    by_case, by_col = missing_counts(kept)
    n_cells = sum(by_case.values())
    doc: dict[str, Any] = {
        "policy": policy,
        "n_cases_in_table": len(kept),
        "n_cells": n_cells,
        "n_cases": len(by_case),
        "n_columns": len(by_col),
        "by_case": by_case,
        "by_column": by_col,
        "dropped_cases": [],
    }
    if not n_cells:
        return kept, doc
    what = (
        f"{where}: {n_cells} missing omics value(s) in {len(by_case)} case(s) "
        f"{list(by_case)[:20]} and {len(by_col)} column(s) {list(by_col)[:20]}"
    )
    if policy == "error":
        raise ValueError(
            f"{what}; bags.omics_impute is error (mean imputes them with the training-fold "
            "mean, drop_case leaves those cases out)"
        )
    if policy == "drop_case":
        kept = kept.drop(index=list(by_case))
        doc["dropped_cases"] = list(by_case)
        if kept.empty:
            raise ValueError(f"{what}; bags.omics_impute drop_case leaves no case")
        log.warning("%s: those cases are left out (bags.omics_impute drop_case)", what)
    else:
        log.warning(
            "%s: each training job imputes them with its training-fold column mean "
            "(bags.omics_impute mean)",
            what,
        )
    return kept, doc


def build_omics_bags(
    omics_tsv: str | os.PathLike[str],
    gene_families_csv: str | os.PathLike[str],
    out_parquet: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    *,
    impute: str = "mean",
    out_missing: str | os.PathLike[str] | None = None,
) -> None:
    """Keep the family columns of the omics table (raw values) and write them with the families.

    Missing cells of the kept columns follow `impute` (bags.omics_impute); their counts per
    case and column go to `out_missing` (JSON) for the run summary.
    """
    table = read_omics_table(omics_tsv)
    families = load_gene_families(gene_families_csv)
    # Fail early (naming the family) when a family matches nothing at all in the table.
    wanted = family_columns(table.columns, families)
    used = set().union(*wanted.values())
    kept = table[[c for c in table.columns if c in used]]
    all_missing = [c for c in kept.columns if kept[c].isna().all()]
    present = kept.drop(columns=all_missing)
    zero_var = _zero_variance(present)
    kept, missing_doc = apply_impute_policy(present.drop(columns=zero_var), impute, omics_tsv)
    if missing_doc["dropped_cases"]:  # fewer cases: a column may now be constant
        zero_var += _zero_variance(kept)
        kept = kept.drop(columns=zero_var, errors="ignore")
    if all_missing or zero_var:
        log.warning(
            "%s: dropped %d all-missing and %d zero-variance columns",
            omics_tsv,
            len(all_missing),
            len(zero_var),
        )
    fam_cols = family_columns(kept.columns, families)
    n_genes = {
        fam: len({split_column(c)[0] for c in cols})  # type: ignore[index]
        for fam, cols in fam_cols.items()
    }
    kept = kept.astype(np.float32)
    kept.index.name = "case_id"
    with atomic_path(out_parquet) as tmp:
        kept.to_parquet(tmp, engine="pyarrow")
    doc = {
        "families": fam_cols,
        "n_genes_found": n_genes,
        "dropped": {
            "n_all_missing": len(all_missing),
            "n_zero_variance": len(zero_var),
            "all_missing": all_missing,
            "zero_variance": zero_var,
        },
    }
    write_text_atomic(out_json, json.dumps(doc, indent=2))
    if out_missing is not None:
        write_text_atomic(out_missing, json.dumps(missing_doc, indent=2))
    log.info("omics bags: %d cases, %d columns, families %s", len(kept), kept.shape[1], n_genes)


def read_families_json(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read `families.json` and return its ordered family → columns mapping."""
    path = Path(path)
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("families"), dict):
        raise ValueError(f"{path}: expected an object with key 'families'")
    fams = doc["families"]
    for fam, cols in fams.items():
        if not isinstance(cols, list) or not cols:
            raise ValueError(f"{path}: family {fam!r} has no columns")
    return {str(k): [str(c) for c in v] for k, v in fams.items()}


class Standardizer:
    """Per-column z-scoring fitted on training cases only (std 0 → 1; missing → training mean)."""

    def __init__(self) -> None:
        self.columns: list[str] | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, frame: pd.DataFrame) -> Standardizer:
        """Learn the mean and std of every column of `frame` (the training cases)."""
        if len(frame) == 0:
            raise ValueError("Standardizer.fit: no training rows")
        values = frame.to_numpy(dtype=np.float64)
        with np.errstate(all="ignore"):
            mean = np.nanmean(values, axis=0) if values.size else np.zeros(values.shape[1])
            std = np.nanstd(values, axis=0) if values.size else np.ones(values.shape[1])
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        self.columns = [str(c) for c in frame.columns]
        self.mean, self.std = mean, std
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Standardise `frame` with the fitted statistics; missing values become 0 (the mean)."""
        if self.columns is None or self.mean is None or self.std is None:
            raise RuntimeError("Standardizer is not fitted")
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise KeyError(f"Standardizer.transform: columns missing from input: {missing[:20]}")
        values = frame[self.columns].to_numpy(dtype=np.float64)
        z = (values - self.mean) / self.std
        z = np.where(np.isnan(z), 0.0, z)
        return pd.DataFrame(z.astype(np.float32), index=frame.index, columns=self.columns)

    def to_dict(self) -> dict[str, Any]:
        """Serialise to JSON-friendly lists (stored in the fold's meta)."""
        if self.columns is None or self.mean is None or self.std is None:
            raise RuntimeError("Standardizer is not fitted")
        return {"columns": self.columns, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Standardizer:
        """Rebuild a fitted Standardizer from `to_dict`'s output."""
        try:
            cols, mean, std = list(d["columns"]), np.asarray(d["mean"]), np.asarray(d["std"])
        except KeyError as err:
            raise ValueError(f"Standardizer.from_dict: missing key {err}") from None
        if not (len(cols) == len(mean) == len(std)):
            raise ValueError("Standardizer.from_dict: columns/mean/std lengths differ")
        obj = cls()
        obj.columns, obj.mean, obj.std = (
            [str(c) for c in cols],
            mean.astype(float),
            std.astype(float),
        )
        return obj
