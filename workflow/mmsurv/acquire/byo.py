"""Bring-your-own data: MCAT-style tables, signatures and split CSVs → the pipeline's inputs.

An MCAT-style table has one row per slide: `case_id`, `slide_id`, `survival_months`,
`censorship` (1 = censored), clinical columns, and gene columns suffixed `_rnaseq`/`_cnv`/`_mut`.
It becomes our clinical TSV (event = 1 − censorship), omics TSV and slide sheet; `signatures.csv`
becomes the gene-family CSV and `splits_{k}.csv` the splits table (`case_id`, `fold`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from mmsurv.acquire.tcga import gene_family_report, write_clinical, write_omics, write_table
from mmsurv.genes import load_gene_families, split_column
from mmsurv.io import atomic_path

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

SLIDE_EXTENSIONS: tuple[str, ...] = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".bif")
"""Slide file extensions tried, in order, when looking a slide id up in the slide directory."""

SHEET_COLUMNS: tuple[str, ...] = ("cohort", "case_id", "slide_id", "path")
_ID_RE = re.compile(r"^[A-Za-z0-9._-]+$")  # as in workflow/schemas/samples.schema.yaml
_LABELS = ("survival_months", "censorship")


class BYOError(ValueError):
    """A bring-your-own input that cannot be converted; the message names the file and cases."""


class MCATTable(NamedTuple):
    """An MCAT-style table split into slides, per-case clinical labels and per-case omics."""

    slides: pd.DataFrame  # columns case_id, slide_id (file stem), one row per slide
    clinical: pd.DataFrame  # index case_id; survival_months, event (bool), clinical columns
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


def read_mcat_table(path: PathLike) -> MCATTable:
    """Read an MCAT-style table (CSV, optionally zipped) and check one label/omics set per case."""
    p = _require_file(path, "MCAT-style table")
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
    cases = table["case_id"]

    gene_cols = [c for c in table.columns if split_column(str(c)) is not None]
    if not gene_cols:
        raise BYOError(f"{p}: no gene columns (suffix _rnaseq, _cnv or _mut)")
    non_numeric = [c for c in gene_cols if not pd.api.types.is_numeric_dtype(table[c])]
    if non_numeric:
        raise BYOError(f"{p}: non-numeric gene column(s) {non_numeric[:20]}")

    months = pd.to_numeric(table["survival_months"], errors="coerce")
    bad = _first_cases(~(months >= 0), cases)
    if bad:
        raise BYOError(f"{p}: missing, non-numeric or negative survival_months for cases {bad}")
    cens = pd.to_numeric(table["censorship"], errors="coerce")
    bad = _first_cases(~cens.isin([0, 1]), cases)
    if bad:
        raise BYOError(f"{p}: censorship must be 0 or 1 (1 = censored); bad for cases {bad}")
    table["survival_months"], table["censorship"] = months.astype(float), cens.astype(int)

    per_case = [*_LABELS, *gene_cols]
    multi = table[table["case_id"].duplicated(keep=False)]  # only cases with several slides
    varying = multi.groupby("case_id", sort=True)[per_case].nunique(dropna=False) > 1
    if varying.to_numpy().any():
        bad_cases = varying.index[varying.any(axis=1)].tolist()
        cols = varying.columns[varying.any(axis=0)].tolist()
        raise BYOError(
            f"{p}: slides of one case disagree on {cols[:10]} for cases {bad_cases[:20]} "
            "(labels and omics must be per case)"
        )
    clinical_cols = [c for c in table.columns if c not in ("case_id", "slide_id", *per_case)]
    if clinical_cols:
        differ = multi.groupby("case_id")[clinical_cols].nunique(dropna=False) > 1
        if differ.to_numpy().any():
            log.warning(
                "%s: clinical column(s) %s differ between slides of a case; first row kept",
                p,
                differ.columns[differ.any(axis=0)].tolist(),
            )
    first = table.drop_duplicates("case_id", keep="first").set_index("case_id").sort_index()
    clinical = first[["survival_months"]].copy()
    clinical["event"] = first["censorship"] == 0  # MCAT: censorship = 1 − event
    for col in clinical_cols:
        clinical[col] = first[col]
    omics = first[gene_cols].astype(np.float64)

    slides = pd.DataFrame(columns=["case_id", "slide_id"])
    if "slide_id" in table.columns:
        rows = table.loc[table["slide_id"].notna(), ["case_id", "slide_id"]].copy()
        rows["slide_id"] = rows["slide_id"].map(slide_stem)
        rows = rows[rows["slide_id"] != ""]
        dup = sorted(set(rows.loc[rows["slide_id"].duplicated(), "slide_id"]))
        if dup:
            raise BYOError(f"{p}: slide_id(s) listed more than once: {dup[:20]}")
        bad_ids = [s for s in rows["slide_id"] if not _ID_RE.match(s)]
        if bad_ids:
            raise BYOError(f"{p}: slide ids {bad_ids[:10]} have characters outside [A-Za-z0-9._-]")
        slides = rows.reset_index(drop=True)
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


def user_folds(
    csvs: Sequence[PathLike], *, n_folds: int, modalities: Mapping[str, set[str]]
) -> pd.DataFrame:
    """The (case_id, fold) table of a cohort's split CSVs; each case must have every modality.

    `modalities` maps each required modality (survival, omics, slides) to the cases that have
    it. The user's folds are kept as given, so a case lacking one is an error naming it.
    """
    if len(csvs) != n_folds:
        raise BYOError(f"{len(csvs)} split CSV(s) given for splits.n_folds = {n_folds}")
    check_split_count(csvs)
    splits = read_mcat_splits(csvs)
    named = set(splits["case_id"])
    lacking = {name: sorted(named - have) for name, have in modalities.items()}
    detail = "; ".join(f"no {name}: {cases[:20]}" for name, cases in lacking.items() if cases)
    if detail:
        raise BYOError(
            f"split CSVs in {Path(csvs[0]).parent} name case(s) lacking a required modality "
            f"({detail}); remove them from the CSVs, supply their data, or configure only "
            "models that do not use that modality"
        )
    return splits


# --------------------------------------------------------------------------- slides
def find_slides(
    slides: pd.DataFrame,
    slide_dir: PathLike | None,
    *,
    cohort: str,
    extensions: Sequence[str] = SLIDE_EXTENSIONS,
) -> tuple[pd.DataFrame, list[str]]:
    """Look each slide id up as `slide_dir/<slide_id><ext>`: (slide sheet, missing slide ids).

    No directory scan: only the named files are tried. `slide_dir=None` means genomics only: an
    empty sheet and no missing slides.
    """
    if slide_dir is None:
        return pd.DataFrame(columns=list(SHEET_COLUMNS)), []
    root = Path(slide_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"slide directory not found: {root}")
    rows, missing = [], []
    for case, slide in slides[["case_id", "slide_id"]].itertuples(index=False):
        found = next(
            (root / f"{slide}{ext}" for ext in extensions if (root / f"{slide}{ext}").is_file()),
            None,
        )
        if found is None:
            missing.append(str(slide))
        else:
            rows.append({"cohort": cohort, "case_id": case, "slide_id": slide, "path": str(found)})
    if missing:
        log.warning(
            "%s: %d slide file(s) not found in %s (tried %s): %s",
            cohort,
            len(missing),
            root,
            list(extensions),
            missing[:20],
        )
    sheet = pd.DataFrame(rows, columns=list(SHEET_COLUMNS))
    return sheet.sort_values("slide_id").reset_index(drop=True), missing


def write_slide_sheet(sheets: Sequence[pd.DataFrame], path: PathLike) -> pd.DataFrame:
    """Concatenate per-cohort slide sheets and write the pipeline's slide sheet TSV."""
    frames = [s[list(SHEET_COLUMNS)] for s in sheets if len(s)]
    sheet = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=list(SHEET_COLUMNS))
    )
    dup = sorted(set(sheet.loc[sheet["slide_id"].duplicated(), "slide_id"]))
    if dup:
        raise BYOError(f"slide sheet {path}: slide_id(s) in more than one cohort: {dup[:20]}")
    write_table(sheet.sort_values(["cohort", "slide_id"]), path)
    return sheet


# --------------------------------------------------------------------------- end to end
class BYOResult(NamedTuple):
    """What `convert_mcat` read, wrote and could not find."""

    table: MCATTable
    sheet: pd.DataFrame  # slide sheet rows of this cohort (slides found)
    missing_slides: list[str]
    families: dict[str, list[str]] | None
    family_report: pd.DataFrame | None
    splits: pd.DataFrame | None


def convert_mcat(
    table_csv: PathLike,
    *,
    cohort: str,
    clinical_out: PathLike,
    omics_out: PathLike,
    slide_dir: PathLike | None = None,
    slides_out: PathLike | None = None,
    signatures_csv: PathLike | None = None,
    families_out: PathLike | None = None,
    split_csvs: Sequence[PathLike] | None = None,
    splits_out: PathLike | None = None,
) -> BYOResult:
    """Convert one cohort's MCAT-style inputs into clinical.tsv, omics.tsv and optional extras.

    Writes `slides_out` (this cohort's slide sheet; empty when no slide exists, so genomics-only
    models still run), `families_out` from `signatures_csv`, and `splits_out` from `split_csvs`.
    """
    table = read_mcat_table(table_csv)
    write_clinical(table.clinical, clinical_out)
    write_omics(table.omics, omics_out)
    sheet, missing = find_slides(table.slides, slide_dir, cohort=cohort)
    if slides_out is not None:
        write_slide_sheet([sheet], slides_out)
    families = report = None
    if signatures_csv is not None:
        families = read_mcat_signatures(signatures_csv)
        report = gene_family_report(table.omics, families, cohort=cohort)
        if families_out is not None:
            write_gene_families(families, families_out)
    splits = None
    if split_csvs:
        splits = read_mcat_splits(split_csvs, cases=table.clinical.index)
        unsplit = sorted(set(table.clinical.index) - set(splits["case_id"]))
        if unsplit:
            log.warning(
                "%s: %d case(s) of the table are in no split and will not be used: %s",
                cohort,
                len(unsplit),
                unsplit[:20],
            )
        if splits_out is not None:
            with atomic_path(splits_out) as tmp:
                splits.to_csv(tmp, sep="\t", index=False, lineterminator="\n")
    return BYOResult(table, sheet, missing, families, report, splits)


def for_cohort(template: str, cohort: str) -> str:
    """A configured path with `{cohort}` replaced (other braces are left as they are)."""
    return template.replace("{cohort}", cohort)


def write_cohort_tables(
    table_csv: PathLike,
    *,
    cohort: str,
    clinical_out: PathLike,
    omics_out: PathLike,
    gene_families_csv: PathLike,
    report_out: PathLike,
) -> MCATTable:
    """One cohort's MCAT-style table → clinical and omics TSVs and the genes found per family."""
    table = read_mcat_table(table_csv)
    write_clinical(table.clinical, clinical_out)
    write_omics(table.omics, omics_out)
    families = load_gene_families(gene_families_csv)
    report = gene_family_report(table.omics, families, cohort=cohort)
    write_table(report, report_out)
    for row in report.itertuples(index=False):
        log.info(
            "%s: %s %s: %d of %d genes found",
            cohort,
            row.family,
            row.modality,
            row.n_found,
            row.n_family_genes,
        )
    return table


def write_byo_sheet(
    tables: Mapping[str, PathLike],
    slide_dir: str,
    out: PathLike,
    *,
    require_slides: bool = True,
) -> pd.DataFrame:
    """The slide sheet of every cohort: the tables' slide ids looked up in `slide_dir`.

    `slide_dir` may contain `{cohort}`. With `require_slides`, a cohort with no slide found is
    an error naming it; slides not found are always logged.
    """
    sheets, empty = [], []
    for cohort, table_csv in tables.items():
        table = read_mcat_table(table_csv)
        sheet, missing = find_slides(table.slides, for_cohort(slide_dir, cohort), cohort=cohort)
        without = sorted(set(table.clinical.index) - set(sheet["case_id"]))
        log.info(
            "%s: %d of %d slides found; %d of %d cases without a slide%s",
            cohort,
            len(sheet),
            len(table.slides),
            len(without),
            len(table.clinical),
            f": {without[:20]}" if without else "",
        )
        if sheet.empty:
            empty.append(cohort)
        sheets.append(sheet)
    if empty and require_slides:
        raise BYOError(
            f"no slide file found for cohort(s) {empty} in {slide_dir} (byo.slide_dir; tried "
            f"<slide_id> + {list(SLIDE_EXTENSIONS)}); models that use pathology need slides"
        )
    return write_slide_sheet(sheets, out)


def check_byo_config(config: Mapping[str, Any], path_models: Sequence[str]) -> None:
    """Check the bring-your-own keys against the rest of the config; one error lists all issues.

    `path_models`: the configured models that use pathology.
    """
    byo, cohorts = config["byo"], list(config["cohorts"])
    tables, slide_dir, splits_dir = byo["tables"], byo["slide_dir"], byo["splits_dir"]
    source = config["data_source"]
    problems = []
    if tables and source != "local":
        problems.append(f"byo.tables is read only with data_source: local (it is {source})")
    if slide_dir is not None and not tables:
        problems.append("byo.slide_dir needs byo.tables: the slide ids come from those tables")
    if config["splits"]["source"] == "user" and splits_dir is None:
        problems.append("splits.source is user but byo.splits_dir (the split CSVs) is null")
    if config["splits"]["source"] != "user" and splits_dir is not None:
        problems.append("byo.splits_dir is set but splits.source is make; set it to user")
    if tables and source == "local":
        absent = [c for c in cohorts if c not in tables]
        if absent:
            problems.append(f"byo.tables has no MCAT-style table for cohort(s) {absent}")
        for key in ("clinical", "omics"):
            if "{cohort}" not in config[key]:
                problems.append(
                    f"`{key}` ({config[key]}) must contain {{cohort}}: byo_tables writes it "
                    "per cohort"
                )
        outputs = {for_cohort(config[k], c) for k in ("clinical", "omics") for c in cohorts}
        clash = sorted({str(tables[c]) for c in cohorts if c in tables} & outputs)
        if clash:
            problems.append(f"byo.tables {clash} would be overwritten by `clinical`/`omics`")
        if path_models and slide_dir is None and not Path(config["samples"]).is_file():
            problems.append(
                f"cohort(s) {cohorts} have no slides: models {list(path_models)} use pathology, "
                f"but byo.slide_dir is null and there is no slide sheet {config['samples']}; "
                "set byo.slide_dir (docs/byo.md) or configure only genomics models"
            )
    if problems:
        raise BYOError("bring-your-own config: " + "; ".join(problems))


# --------------------------------------------------------------------------- example
EXAMPLE_FAMILIES: dict[str, list[str]] = {
    "Tumor Suppressor Genes": ["TP53", "PTEN", "RB1"],
    "Oncogenes": ["KRAS", "MYC", "BRAF"],
    "Protein Kinases": ["CDK4", "AKT1", "MAPK1"],
    "Cell Differentiation Markers": ["CD4", "CD8A", "KRT5"],
    "Transcription Factors": ["FOXA1", "GATA3", "SOX2"],
    "Cytokines and Growth Factors": ["IL6", "TGFB1", "VEGFA"],
}
"""Six families of three genes each: the layout of MCAT's signatures.csv, kept tiny."""


def write_example(
    out_dir: PathLike, *, cohort: str, n_cases: int = 30, n_folds: int = 5, seed: int = 0
) -> dict[str, Path]:
    """Write a synthetic MCAT-style cohort (table, signatures.csv, split CSVs) for tests and docs.

    Files: `{cohort}_all_clean.csv` (one row per slide; every 10th case has two slides),
    `signatures.csv` and `splits/{cohort}/splits_{k}.csv`. Risk rises with TP53 and MYC
    expression, so genomics models can learn something.
    """
    if n_cases < 2 * n_folds:
        raise ValueError(f"need at least {2 * n_folds} cases for {n_folds} folds, got {n_cases}")
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    genes = [g for fam in EXAMPLE_FAMILIES.values() for g in fam]
    cases = [f"TCGA-ZZ-{i:04d}" for i in range(1, n_cases + 1)]
    rnaseq = rng.normal(size=(n_cases, len(genes)))
    cnv = rng.integers(-2, 3, size=(n_cases, len(genes)))
    risk = 0.8 * rnaseq[:, genes.index("TP53")] + 0.6 * rnaseq[:, genes.index("MYC")]
    months = rng.exponential(40.0 * np.exp(-risk)) + 0.5
    censored = rng.uniform(size=n_cases) < 0.3
    rows = []
    for i, case in enumerate(cases):
        row: dict[str, Any] = {
            "case_id": case,
            "site": "ZZ",
            "is_female": int(rng.integers(0, 2)),
            "oncotree_code": cohort,
            "age": int(rng.integers(40, 90)),
            "survival_months": round(float(months[i]), 2),
            "censorship": int(censored[i]),
            "train": 1,
        }
        row |= {f"{g}_rnaseq": round(float(v), 4) for g, v in zip(genes, rnaseq[i], strict=True)}
        row |= {f"{g}_cnv": int(v) for g, v in zip(genes, cnv[i], strict=True)}
        row["TP53_mut"] = int(rng.uniform() < 0.4)
        n_slides = 2 if i % 10 == 9 else 1
        for d in range(1, n_slides + 1):
            rows.append(
                {"slide_id": f"{case}-01Z-00-DX{d}.{int(rng.integers(16**8)):08X}.svs", **row}
            )
    table = pd.DataFrame(rows)
    table = table[
        ["case_id", "slide_id", *[c for c in table.columns if c not in ("case_id", "slide_id")]]
    ]
    paths = {"table": out / f"{cohort}_all_clean.csv", "signatures": out / "signatures.csv"}
    with atomic_path(paths["table"]) as tmp:
        table.to_csv(tmp, lineterminator="\n")  # MCAT keeps the pandas index as a first column
    write_gene_families(EXAMPLE_FAMILIES, paths["signatures"])
    order = rng.permutation(n_cases)
    folds = [sorted(cases[j] for j in order[k::n_folds]) for k in range(n_folds)]
    split_dir = out / "splits" / cohort
    for k, val in enumerate(folds):
        train = [c for j, fold in enumerate(folds) if j != k for c in fold]
        frame = pd.DataFrame({"train": pd.Series(train), "val": pd.Series(val)})
        with atomic_path(split_dir / f"splits_{k}.csv") as tmp:
            frame.to_csv(tmp, lineterminator="\n")
    paths["splits_dir"] = split_dir
    return paths


# --------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `convert` one cohort, write the `sheet`, or write an `example` cohort."""
    import argparse

    from mmsurv.io import setup_logging

    ap = argparse.ArgumentParser(prog="python -m mmsurv.acquire.byo", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help=convert_mcat.__doc__)
    conv.add_argument("--cohort", required=True, help="cohort name as in config `cohorts`")
    conv.add_argument("--table", required=True, help="MCAT-style CSV (one row per slide)")
    conv.add_argument("--clinical-out", required=True, help="clinical TSV to write")
    conv.add_argument("--omics-out", required=True, help="omics TSV to write")
    conv.add_argument("--slide-dir", default=None, help="directory holding <slide_id>.svs files")
    conv.add_argument("--slides-out", default=None, help="slide sheet TSV of this cohort to write")
    conv.add_argument("--signatures", default=None, help="MCAT signatures.csv (one column/family)")
    conv.add_argument("--families-out", default=None, help="gene-family CSV to write")
    conv.add_argument("--splits-dir", default=None, help="directory with splits_{k}.csv")
    conv.add_argument("--n-folds", type=int, default=5, help="number of splits_{k}.csv to read")
    conv.add_argument("--splits-out", default=None, help="splits TSV (case_id, fold) to write")
    sheet = sub.add_parser("sheet", help=write_byo_sheet.__doc__)
    sheet.add_argument(
        "--table",
        action="append",
        required=True,
        metavar="COHORT=CSV",
        help="a cohort and its MCAT-style CSV (repeatable)",
    )
    sheet.add_argument("--slide-dir", required=True, help="slide directory; may hold {cohort}")
    sheet.add_argument("--out", required=True, help="slide sheet TSV (config `samples`)")
    sheet.add_argument(
        "--allow-empty",
        action="store_true",
        help="a cohort may have no slide found (genomics-only runs); default: an error",
    )
    example = sub.add_parser("example", help=write_example.__doc__)
    example.add_argument("--out", required=True, help="directory to write the files into")
    example.add_argument("--cohort", default="BYO-BLCA", help="cohort name (default BYO-BLCA)")
    example.add_argument("--n-cases", type=int, default=30, help="cases (default 30)")
    example.add_argument("--n-folds", type=int, default=5, help="split CSVs (default 5)")
    example.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    for parser in (conv, sheet, example):
        parser.add_argument("--log", default=None, help="log file (default: stderr)")
    args = ap.parse_args(argv)
    setup_logging(args.log)
    if args.command == "convert":
        _convert_command(args)
    elif args.command == "sheet":
        tables = {}
        for item in args.table:
            cohort, sep, path = item.partition("=")
            if not sep or not cohort or not path:
                ap.error(f"--table expects COHORT=CSV, got {item!r}")
            tables[cohort] = path
        write_byo_sheet(tables, args.slide_dir, args.out, require_slides=not args.allow_empty)
    else:
        paths = write_example(
            args.out,
            cohort=args.cohort,
            n_cases=args.n_cases,
            n_folds=args.n_folds,
            seed=args.seed,
        )
        log.info("example cohort written: %s", {k: str(v) for k, v in paths.items()})
    return 0


def _convert_command(args: Any) -> None:
    """Run `convert` from parsed arguments and log what was found."""
    split_csvs = mcat_split_paths(args.splits_dir, args.n_folds) if args.splits_dir else None
    res = convert_mcat(
        args.table,
        cohort=args.cohort,
        clinical_out=args.clinical_out,
        omics_out=args.omics_out,
        slide_dir=args.slide_dir,
        slides_out=args.slides_out,
        signatures_csv=args.signatures,
        families_out=args.families_out,
        split_csvs=split_csvs,
        splits_out=args.splits_out,
    )
    log.info(
        "%s: %d cases, %d slides found, %d missing",
        args.cohort,
        len(res.table.clinical),
        len(res.sheet),
        len(res.missing_slides),
    )


if __name__ == "__main__":
    raise SystemExit(main())
