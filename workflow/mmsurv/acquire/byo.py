"""Bring-your-own data: MCAT-style tables, signatures and split CSVs → the pipeline's inputs.

An MCAT-style table has one row per slide: `case_id`, `slide_id`, `survival_months`,
`censorship` (1 = censored), clinical columns, and gene columns suffixed `_rnaseq`/`_cnv`/`_mut`.
It becomes our clinical TSV (event = 1 − censorship), omics TSV and slide sheet; `signatures.csv`
becomes the gene-family CSV and `splits_{k}.csv` the splits table (`case_id`, `fold`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from mmsurv.acquire.harmonise import gene_family_report
from mmsurv.acquire.mcat import (
    SLIDE_EXTENSIONS,
    UNSUFFIXED_MODES,
    BYOError,
    MCATTable,
    Unsuffixed,
    check_split_count,
    mcat_split_paths,
    read_mcat_signatures,
    read_mcat_splits,
    read_mcat_table,
    write_gene_families,
)
from mmsurv.acquire.writers import write_clinical, write_omics, write_table
from mmsurv.genes import load_gene_families
from mmsurv.io import atomic_path

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

SHEET_COLUMNS: tuple[str, ...] = ("cohort", "case_id", "slide_id", "path")


# --------------------------------------------------------------------------- splits
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
    unsuffixed: Unsuffixed = "error",
) -> BYOResult:
    """Convert one cohort's MCAT-style inputs into clinical.tsv, omics.tsv and optional extras.

    Writes `slides_out` (this cohort's slide sheet; empty when no slide exists, so genomics-only
    models still run), `families_out` from `signatures_csv`, and `splits_out` from `split_csvs`.
    `unsuffixed`: what to do with gene columns that lack a suffix (config `byo.unsuffixed`).
    """
    families = read_mcat_signatures(signatures_csv) if signatures_csv is not None else None
    table = read_mcat_table(
        table_csv, unsuffixed=unsuffixed, known_genes=_genes_of(families), cohort=cohort
    )
    write_clinical(table.clinical, clinical_out)
    write_omics(table.omics, omics_out)
    sheet, missing = find_slides(table.slides, slide_dir, cohort=cohort)
    if slides_out is not None:
        write_slide_sheet([sheet], slides_out)
    report = None
    if families is not None:
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


def _genes_of(families: Mapping[str, Sequence[str]] | None) -> set[str]:
    """Every gene of the gene families (none when there are no families)."""
    return {g for genes in (families or {}).values() for g in genes}


def for_cohort(
    template: str | Mapping[str, str], cohort: str, *, key: str = "byo.splits_dir"
) -> str:
    """A configured path of one cohort: `{cohort}` replaced, or the cohort's entry of a mapping.

    A mapping (cohort -> path) names layouts no template can, such as MCAT's
    `splits/5foldcv/tcga_blca` for cohort TCGA-BLCA; `key` names the config key in errors.
    """
    if isinstance(template, Mapping):
        if cohort not in template:
            raise BYOError(f"{key} names no path for cohort {cohort} (it names {list(template)})")
        template = str(template[cohort])
    return template.replace("{cohort}", cohort)


def write_cohort_tables(
    table_csv: PathLike,
    *,
    cohort: str,
    clinical_out: PathLike,
    omics_out: PathLike,
    gene_families_csv: PathLike,
    report_out: PathLike,
    unsuffixed: Unsuffixed = "error",
) -> MCATTable:
    """One cohort's MCAT-style table → clinical and omics TSVs and the genes found per family.

    `unsuffixed` (config `byo.unsuffixed`) handles gene columns without a suffix; the genes of
    the families count as gene names.
    """
    families = load_gene_families(gene_families_csv)
    table = read_mcat_table(
        table_csv, unsuffixed=unsuffixed, known_genes=_genes_of(families), cohort=cohort
    )
    write_clinical(table.clinical, clinical_out)
    write_omics(table.omics, omics_out)
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
        # only slide ids are used: byo_tables applies byo.unsuffixed to the omics
        table = read_mcat_table(table_csv, unsuffixed="keep", cohort=cohort)
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
    if isinstance(splits_dir, Mapping) and config["splits"]["source"] == "user":
        absent = [c for c in cohorts if c not in splits_dir]
        if absent:
            problems.append(
                f"byo.splits_dir (a cohort -> directory mapping) has no directory for "
                f"cohort(s) {absent}"
            )
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
    conv.add_argument(
        "--unsuffixed",
        choices=UNSUFFIXED_MODES,
        default="error",
        help="gene-like columns without _rnaseq/_cnv/_mut: error (default), mut = read as "
        "<GENE>_mut, ignore = drop with a warning (config byo.unsuffixed)",
    )
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
        unsuffixed=args.unsuffixed,
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
