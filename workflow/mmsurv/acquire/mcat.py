"""MCAT-style inputs for bring-your-own data: per-slide tables, signatures and split CSVs."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from mmsurv.acquire.clinical import clinical_covariates
from mmsurv.genes import load_gene_families, split_column
from mmsurv.io import atomic_path

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

SLIDE_EXTENSIONS: tuple[str, ...] = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".bif")
"""Slide file extensions tried, in order, when looking a slide id up in the slide directory."""

_ID_RE = re.compile(r"^[A-Za-z0-9._-]+$")  # as in workflow/schemas/samples.schema.yaml
_LABELS = ("survival_months", "censorship")

Unsuffixed = Literal["error", "mut", "ignore", "keep"]
"""What to do with gene-looking columns that lack a suffix (config `byo.unsuffixed`).

`error`: refuse; `mut`: read them as mutation calls `<GENE>_mut`; `ignore`: drop them with a
warning; `keep` (not a config value): leave them as clinical columns, for readers that write
no omics (the slide sheet).
"""
UNSUFFIXED_MODES: tuple[str, ...] = ("error", "mut", "ignore")

METADATA_COLUMNS: frozenset[str] = frozenset(
    c.lower()
    for c in (
        # MCAT's metadata columns (dataset_survival.py) and its split columns
        *("case_id", "slide_id", "site", "is_female", "oncotree_code", "age", "survival_months"),
        *("censorship", "train", "val", "test", "disc_label", "label", "stage", "type", "gender"),
        *("survival", "PatientID", "event"),
        # TCGA-CDR endpoints, which look like gene symbols (OS, DSS, DFI, PFI)
        *("OS", "DSS", "DFI", "PFI", "PFS", "DFS"),
    )
)
"""Column names (case-insensitive) never read as genes, however they look."""

_GENE_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:orf[0-9]+)?(?:[-.][A-Z0-9]+)*$")
"""An HGNC-like symbol: TP53, HLA-A, NKX2-1, C1orf112 (a clinical `age` or `AJCC_stage` is not)."""


class BYOError(ValueError):
    """A bring-your-own input that cannot be converted; the message names the file and cases."""


class MCATTable(NamedTuple):
    """An MCAT-style table split into slides, per-case clinical labels and per-case omics."""

    slides: pd.DataFrame  # columns case_id, slide_id (file stem), one row per slide
    clinical: pd.DataFrame  # index case_id; survival_months, event, age/sex/site/stage, others
    omics: pd.DataFrame  # index case_id; <GENE>_<modality> float columns


def _require_file(path: PathLike, what: str) -> Path:
    """The path as a Path, or FileNotFoundError naming what it should have been."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    return p


def slide_stem(slide_id: str, extensions: Sequence[str] = SLIDE_EXTENSIONS) -> str:
    """A slide id without a slide-file extension ('X.svs' → 'X'; a suffix, not characters)."""
    text = str(slide_id).strip()
    for ext in extensions:
        if text.lower().endswith(ext):
            return text[: -len(ext)]
    return text


def _first_cases(mask: pd.Series, cases: pd.Series, n: int = 20) -> list[str]:
    """Sorted unique case ids where `mask` holds (at most n)."""
    return sorted(set(cases[mask].astype(str)))[:n]


def unsuffixed_gene_columns(table: pd.DataFrame, known_genes: Collection[str] = ()) -> list[str]:
    """Numeric columns with no omics suffix that are genes: a gene-family gene or gene-like name.

    Metadata (METADATA_COLUMNS) never counts; a numeric column named like an HGNC symbol
    (`_GENE_RE`) or like a gene of `known_genes` does. MCAT tables with mutation calls
    sometimes name them `TP53` rather than `TP53_mut`.
    """
    known = set(known_genes)
    return [
        str(c)
        for c in table.columns
        if split_column(str(c)) is None
        and str(c).lower() not in METADATA_COLUMNS
        and (str(c) in known or _GENE_RE.match(str(c)) is not None)
        and pd.api.types.is_numeric_dtype(table[c])
    ]


def _apply_unsuffixed(
    table: pd.DataFrame,
    p: Path,
    mode: Unsuffixed,
    known_genes: Collection[str],
    cohort: str | None,
) -> pd.DataFrame:
    """The table with unsuffixed gene columns renamed to `<GENE>_mut`, dropped or refused."""
    if mode not in (*UNSUFFIXED_MODES, "keep"):
        raise ValueError(f"unsuffixed must be one of {list(UNSUFFIXED_MODES)}, got {mode!r}")
    found = unsuffixed_gene_columns(table, known_genes) if mode != "keep" else []
    if not found:
        return table
    where = f"{p}" + (f" (cohort {cohort})" if cohort else "")
    if mode == "error":
        raise BYOError(
            f"{where}: {len(found)} column(s) look like genes but have no _rnaseq/_cnv/_mut "
            f"suffix, e.g. {found[:8]}; set byo.unsuffixed: mut to read them as mutation calls "
            "(<GENE>_mut), or byo.unsuffixed: ignore to drop them (command line: "
            "--unsuffixed). A clinical column is kept if its name does not look like a gene "
            "symbol (e.g. in lower case)"
        )
    if mode == "ignore":
        log.warning(
            "%s: dropped %d column(s) that look like genes but have no _rnaseq/_cnv/_mut "
            "suffix (byo.unsuffixed: ignore), e.g. %s",
            where,
            len(found),
            found[:8],
        )
        return table.drop(columns=found)
    clash = [c for c in found if f"{c}_mut" in table.columns]
    if clash:
        raise BYOError(
            f"{where}: byo.unsuffixed: mut would rename {clash[:8]} to <GENE>_mut, but the table "
            "already has those _mut columns; drop one of each pair"
        )
    log.info(
        "%s: %d unsuffixed gene column(s) read as <GENE>_mut, e.g. %s", where, len(found), found[:8]
    )
    return table.rename(columns={c: f"{c}_mut" for c in found})


def _labels(table: pd.DataFrame, p: Path) -> tuple[pd.Series, pd.Series]:
    """survival_months (float, >= 0) and censorship (0/1) of each row, checked per case."""
    cases = table["case_id"]
    raw = table["survival_months"]
    months = pd.to_numeric(raw, errors="coerce")
    for what, mask in (
        ("survival_months is not a number", raw.notna() & months.isna()),
        ("missing survival_months", raw.isna()),
        ("negative survival_months", months < 0),
    ):
        bad = _first_cases(mask, cases)
        if bad:
            raise BYOError(f"{p}: {what} for cases {bad}")
    cens = pd.to_numeric(table["censorship"], errors="coerce")
    bad = _first_cases(~cens.isin([0, 1]), cases)
    if bad:
        raise BYOError(f"{p}: censorship must be 0 or 1 (1 = censored); bad for cases {bad}")
    return months.astype(float), cens.astype(int)


def _read_ids(p: Path) -> pd.DataFrame:
    """The CSV with the unnamed index dropped and a checked, stripped `case_id` column."""
    table = pd.read_csv(p, low_memory=False, dtype={"case_id": str, "slide_id": str})
    table = table.drop(columns=[c for c in table.columns if str(c).startswith("Unnamed:")])
    if "case_id" not in table.columns:
        if "slide_id" not in table.columns:
            raise BYOError(f"{p}: needs a `case_id` column (or TCGA `slide_id`s to derive it)")
        ids = table["slide_id"].astype(str)
        if not ids.str.match(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}").all():
            raise BYOError(f"{p}: no `case_id` column and slide ids are not TCGA barcodes")
        table.insert(0, "case_id", ids.str[:12])  # MCAT's own fallback
        log.warning("%s: no `case_id` column; used the first 12 characters of slide_id", p)
    missing = [c for c in _LABELS if c not in table.columns]
    if missing:
        raise BYOError(f"{p}: missing column(s) {missing}; it has {list(table.columns)[:15]}")
    table["case_id"] = table["case_id"].str.strip()
    empty = table.index[table["case_id"].isna() | (table["case_id"] == "")]
    if len(empty):
        raise BYOError(f"{p}: empty case_id in data row(s) {[int(i) + 1 for i in empty[:20]]}")
    return table


def _slides(table: pd.DataFrame, p: Path) -> pd.DataFrame:
    """The (case_id, slide_id stem) rows of the table's slides, checked for duplicates and ids."""
    if "slide_id" not in table.columns:
        return pd.DataFrame(columns=["case_id", "slide_id"])
    rows = table.loc[table["slide_id"].notna(), ["case_id", "slide_id"]].copy()
    rows["slide_id"] = rows["slide_id"].map(slide_stem)
    rows = rows[rows["slide_id"] != ""]
    dup = sorted(set(rows.loc[rows["slide_id"].duplicated(), "slide_id"]))
    if dup:
        raise BYOError(f"{p}: slide_id(s) listed more than once: {dup[:20]}")
    bad_ids = [s for s in rows["slide_id"] if not _ID_RE.match(s)]
    if bad_ids:
        raise BYOError(f"{p}: slide ids {bad_ids[:10]} have characters outside [A-Za-z0-9._-]")
    return rows.reset_index(drop=True)


def read_mcat_table(
    path: PathLike,
    *,
    unsuffixed: Unsuffixed = "error",
    known_genes: Collection[str] = (),
    cohort: str | None = None,
) -> MCATTable:
    """Read an MCAT-style table (CSV, optionally zipped) and check one label/omics set per case.

    Gene columns end in _rnaseq/_cnv/_mut. Columns without a suffix that look like genes
    (`unsuffixed_gene_columns`, with `known_genes` from the gene families) are handled as
    `unsuffixed` says, so none becomes a clinical column unnoticed. Clinical columns are kept;
    age, sex (`is_female` 1 → female), site and stage get their names (`acquire.clinical`).
    """
    p = _require_file(path, "MCAT-style table")
    table = _apply_unsuffixed(_read_ids(p), p, unsuffixed, known_genes, cohort)
    cases = table["case_id"]

    gene_cols = [c for c in table.columns if split_column(str(c)) is not None]
    if not gene_cols:
        raise BYOError(f"{p}: no gene columns (suffix _rnaseq, _cnv or _mut)")
    non_numeric = [c for c in gene_cols if not pd.api.types.is_numeric_dtype(table[c])]
    if non_numeric:
        raise BYOError(f"{p}: non-numeric gene column(s) {non_numeric[:20]}")
    table["survival_months"], table["censorship"] = _labels(table, p)

    per_case = [*_LABELS, *gene_cols]
    multi = table[cases.duplicated(keep=False)]  # only cases with several slides
    varying = multi.groupby("case_id", sort=True)[per_case].nunique(dropna=False) > 1
    if varying.to_numpy().any():
        bad_cases = varying.index[varying.any(axis=1)].tolist()
        cols = varying.columns[varying.any(axis=0)].tolist()
        raise BYOError(
            f"{p}: slides of one case disagree on {cols[:10]} for cases {bad_cases[:20]} "
            "(labels and omics must be per case)"
        )
    if "event" in table.columns:  # ours is derived from censorship; a second would clash
        log.warning("%s: column `event` ignored; event = 1 - censorship", p)
    reserved = ("case_id", "slide_id", "event", *per_case)
    clinical_cols = [c for c in table.columns if c not in reserved]
    if clinical_cols:
        differ = multi.groupby("case_id")[clinical_cols].nunique(dropna=False) > 1
        if differ.to_numpy().any():
            cols = differ.columns[differ.any(axis=0)].tolist()
            log.warning(
                "%s: %d clinical column(s) differ between slides of a case; first row kept: %s",
                p,
                len(cols),
                cols[:20],
            )
    first = table.drop_duplicates("case_id", keep="first").set_index("case_id").sort_index()
    event = (first["censorship"] == 0).rename("event")  # MCAT: censorship = 1 − event
    # age, sex (from is_female), site and stage as named columns, then the table's others
    cov = clinical_covariates(first[clinical_cols], first.index.to_series(), source=str(p))
    rest = [c for c in clinical_cols if c not in cov.columns]
    clinical = pd.concat([first[["survival_months"]], event, cov, first[rest]], axis=1)
    omics = first[gene_cols].astype(np.float64)

    slides = _slides(table, p)
    bad_cases = [c for c in clinical.index if not _ID_RE.match(c)]
    if bad_cases:
        raise BYOError(f"{p}: case ids {bad_cases[:10]} have characters outside [A-Za-z0-9._-]")
    log.info(
        "%s: %d cases, %d slides, %d gene columns, %d clinical columns",
        p,
        len(clinical),
        len(slides),
        len(gene_cols),
        len(clinical_cols),
    )
    return MCATTable(slides=slides, clinical=clinical, omics=omics)


# --------------------------------------------------------------------------- gene families
def read_mcat_signatures(path: PathLike) -> dict[str, list[str]]:
    """Read MCAT's `signatures.csv` (one column per family, gene symbols, blank padded)."""
    return load_gene_families(_require_file(path, "signatures CSV"))


def write_gene_families(families: Mapping[str, Sequence[str]], path: PathLike) -> None:
    """Write families as the pipeline's gene-family CSV (one column per family, blank padded)."""
    if not families:
        raise ValueError(f"no gene families to write to {path}")
    table = pd.DataFrame({f: pd.Series(list(g), dtype=object) for f, g in families.items()})
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")


# --------------------------------------------------------------------------- splits
def mcat_split_paths(split_dir: PathLike, n_folds: int) -> list[Path]:
    """`splits_0.csv` … `splits_{n_folds-1}.csv` in `split_dir`; all must exist."""
    paths = [Path(split_dir) / f"splits_{k}.csv" for k in range(n_folds)]
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"split CSV(s) not found: {absent}")
    check_split_count(paths)
    return paths


def check_split_count(paths: Sequence[PathLike]) -> None:
    """Fail when `splits_{K}.csv` exists beside the K CSVs read: the fold count is too small."""
    if not paths:
        return
    extra = Path(paths[-1]).with_name(f"splits_{len(paths)}.csv")
    if extra.is_file():
        raise BYOError(
            f"{extra.parent} holds {extra.name} but only {len(paths)} split CSV(s) are read; "
            f"set splits.n_folds (--n-folds) to the number of split CSVs"
        )


def _split_column(table: pd.DataFrame, column: str, path: Path, k: int) -> list[str]:
    """Case ids of one column of a split CSV (NaN padding removed), checking duplicates."""
    values = table[column].dropna().astype(str).str.strip()
    values = values[values != ""]
    dup = sorted(set(values[values.duplicated()]))
    if dup:
        raise BYOError(f"{path}: case(s) {dup[:20]} listed twice in `{column}` of split {k}")
    return values.tolist()


def read_mcat_splits(
    paths: Sequence[PathLike], *, cases: Iterable[str] | None = None
) -> pd.DataFrame:
    """Turn MCAT split CSVs (`train`/`val` columns of case ids) into our (case_id, fold) table.

    Split k's `val` cases get fold k. Our format trains fold k on every other fold's cases, so
    each case must be in `val` exactly once and `train` of split k must be the other folds' `val`
    cases. `cases` (the table's cases) must contain every case the splits name.
    """
    if not paths:
        raise ValueError("no split CSVs given")
    fold_of: dict[str, int] = {}
    trains: list[tuple[Path, set[str]]] = []
    for k, path in enumerate(paths):
        p = _require_file(path, "split CSV")
        table = pd.read_csv(p, dtype=str)
        missing = [c for c in ("train", "val") if c not in table.columns]
        if missing:
            raise BYOError(f"{p}: missing column(s) {missing}; it has {list(table.columns)}")
        train = _split_column(table, "train", p, k)
        val = _split_column(table, "val", p, k)
        if not val:
            raise BYOError(f"{p}: split {k} has no `val` cases")
        both = sorted(set(train) & set(val))
        if both:
            raise BYOError(f"{p}: case(s) {both[:20]} are in both train and val of split {k}")
        if "test" in table.columns and table["test"].notna().any():
            log.warning("%s: `test` column ignored (cross-validation uses train/val)", p)
        for case in val:
            if case in fold_of:
                raise BYOError(
                    f"{p}: case {case} is in val of split {fold_of[case]} and of split {k}; "
                    "each case must be held out once"
                )
            fold_of[case] = k
        trains.append((p, set(train)))
    named = set(fold_of).union(*(t for _, t in trains))
    if cases is not None:
        unknown = sorted(named - {str(c) for c in cases})
        if unknown:
            raise BYOError(
                f"{len(unknown)} case(s) in the split CSVs are not in the table: {unknown[:50]}"
            )
    for k, (p, train) in enumerate(trains):
        expected = {c for c, f in fold_of.items() if f != k}
        extra, lacking = sorted(train - expected), sorted(expected - train)
        if extra:
            raise BYOError(
                f"{p}: case(s) {extra[:20]} are in train of split {k} but never in val; "
                "the splits table holds only cases held out in some fold"
            )
        if lacking:
            raise BYOError(
                f"{p}: case(s) {lacking[:20]} (val of another split) are missing from train of "
                f"split {k}; folds train on every other fold's cases"
            )
    out = pd.DataFrame({"case_id": list(fold_of), "fold": list(fold_of.values())})
    return out.sort_values(["fold", "case_id"]).reset_index(drop=True).astype({"fold": "int64"})
