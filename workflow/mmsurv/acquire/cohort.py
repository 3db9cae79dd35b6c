"""TCGA cohort tables: parse a cohort's sources, harmonise, write pipeline inputs and reports."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import pandas as pd

from mmsurv.acquire.barcodes import DEFAULT_SAMPLE_TYPES
from mmsurv.acquire.cbioportal import read_cbioportal_case_list, read_cbioportal_matrix, read_maf
from mmsurv.acquire.gdc_omics import read_gdc_gene_cnv, read_gdc_star_counts, read_omics_file_table
from mmsurv.acquire.harmonise import (
    CohortResult,
    MissingPolicy,
    Transform,
    gene_family_report,
    harmonise_cohort,
    harmonise_omics,
)
from mmsurv.acquire.survival import SurvivalTable, read_cbioportal_survival, read_tcga_cdr
from mmsurv.acquire.tcga_io import TCGAFormatError, need_columns
from mmsurv.acquire.writers import write_clinical, write_omics, write_table
from mmsurv.genes import load_gene_families

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def select_for_pipeline(
    result: CohortResult,
    *,
    slides: pd.DataFrame,
    omics: pd.DataFrame,
    survival: pd.DataFrame | SurvivalTable,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The (slide sheet rows, clinical, omics) of the kept cases, each restricted to its use."""
    table = survival.table if isinstance(survival, SurvivalTable) else survival
    cases = result.cases
    path_cases = set(cases.index[cases["use_pathology"]])
    gen_cases = set(cases.index[cases["use_genomics"]])
    kept = set(cases.index[cases["kept"]])
    sheet = slides[slides["case_id"].astype(str).isin(path_cases)]
    if "cohort" in sheet.columns and len(cases):
        sheet = sheet[sheet["cohort"].astype(str) == str(cases["cohort"].iloc[0])]
    clinical = table[table.index.astype(str).isin(kept)]
    omics_kept = omics[omics.index.astype(str).isin(gen_cases)]
    return sheet, clinical, omics_kept


REPORT_FILES: dict[str, str] = {
    "cases": "cases.tsv",
    "summary": "cohort_summary.tsv",
    "omics_report": "omics_report.tsv",
    "dropped_genes": "omics_dropped_genes.tsv",
    "dropped_cases": "omics_dropped_cases.tsv",
    "survival_excluded": "survival_excluded.tsv",
    "gene_families": "gene_family_report.tsv",
}
"""File names `prepare_cohort` writes into its report directory (keys are for rule outputs)."""


def prepare_cohort(
    *,
    cohort: str,
    slides: pd.DataFrame,
    rna: pd.DataFrame,
    cnv: pd.DataFrame,
    mut: pd.DataFrame | None,
    survival: SurvivalTable,
    families: Mapping[str, Sequence[str]],
    clinical_out: PathLike,
    omics_out: PathLike,
    report_dir: PathLike,
    transforms: Mapping[str, Transform] | None = None,
    missing_policy: MissingPolicy = "drop",
    slides_out: PathLike | None = None,
) -> CohortResult:
    """Harmonise one cohort's parsed tables and write the pipeline inputs plus the reports.

    Omics are restricted to the family genes; clinical.tsv holds every kept case, omics.tsv the
    cases used by genomics models and `slides_out` (optional) the slides of pathology cases.
    """
    genes = list(dict.fromkeys(g for fam in families.values() for g in fam))
    omics = harmonise_omics(rna, cnv, mut, genes=genes, transforms=transforms)
    result = harmonise_cohort(
        slides, omics.table, survival, cohort=cohort, missing_policy=missing_policy
    )
    sheet, clinical, omics_kept = select_for_pipeline(
        result, slides=slides, omics=omics.table, survival=survival
    )
    write_clinical(clinical, clinical_out)
    write_omics(omics_kept, omics_out)
    if slides_out is not None:
        write_table(sheet, slides_out)
    out = Path(report_dir)
    write_table(result.cases, out / REPORT_FILES["cases"], index=True)
    write_table(result.summary, out / REPORT_FILES["summary"])
    write_table(omics.report.assign(cohort=cohort), out / REPORT_FILES["omics_report"])
    write_table(omics.dropped_genes, out / REPORT_FILES["dropped_genes"])
    write_table(omics.dropped_cases, out / REPORT_FILES["dropped_cases"])
    write_table(survival.excluded, out / REPORT_FILES["survival_excluded"])
    family = gene_family_report(omics_kept, families, cohort=cohort)
    write_table(family, out / REPORT_FILES["gene_families"])
    return result


def _read_omics_sources(
    source: str,
    rnaseq: PathLike,
    cnv: PathLike,
    *,
    sample_types: Sequence[str],
    rnaseq_value: str,
    cnv_value: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The case × gene RNA and CNV tables of one cohort from the configured omics source."""
    if source == "cbioportal":
        return (
            read_cbioportal_matrix(rnaseq, sample_types=sample_types),
            read_cbioportal_matrix(cnv, sample_types=sample_types),
        )
    if source == "gdc":
        rna_files = read_omics_file_table(rnaseq, "rnaseq")
        cnv_files = read_omics_file_table(cnv, "cnv")
        log.info(
            "GDC omics: %d STAR-counts files (%s), %d gene-level copy-number files (%s)",
            len(rna_files),
            rnaseq_value,
            len(cnv_files),
            cnv_value,
        )
        return (
            read_gdc_star_counts(rna_files, value=rnaseq_value, sample_types=sample_types),
            read_gdc_gene_cnv(cnv_files, value=cnv_value, sample_types=sample_types),
        )
    raise ValueError(f"acquisition.omics.source must be 'cbioportal' or 'gdc', got {source!r}")


def prepare_cohort_from_files(
    *,
    cohort: str,
    slide_sheet: PathLike,
    rnaseq: PathLike,
    cnv: PathLike,
    survival: PathLike,
    survival_source: Literal["cbioportal", "tcdr"],
    gene_families: PathLike,
    clinical_out: PathLike,
    omics_out: PathLike,
    report_dir: PathLike,
    mut: PathLike | None = None,
    case_list: PathLike | None = None,
    transforms: Mapping[str, Transform] | None = None,
    sample_types: Sequence[str] = DEFAULT_SAMPLE_TYPES,
    missing_policy: MissingPolicy = "drop",
    omics_source: Literal["cbioportal", "gdc"] = "cbioportal",
    rnaseq_value: str = "tpm_unstranded",
    cnv_value: str = "copy_number",
) -> CohortResult:
    """Parse a cohort's omics and survival sources, then `prepare_cohort`.

    `omics_source="cbioportal"`: `rnaseq`/`cnv` are the unpacked study matrices. `"gdc"`: they
    are the downloaded-files tables of `gdc_omics.fetch_omics_files` (one per modality), read
    with `read_gdc_star_counts` (column `rnaseq_value`) and `read_gdc_gene_cnv` (`cnv_value`).
    """
    if survival_source == "cbioportal":
        surv = read_cbioportal_survival(survival)
    elif survival_source == "tcdr":
        surv = read_tcga_cdr(survival, cancer_type=cohort)
    else:
        raise ValueError(
            f"acquisition.survival.source must be 'cbioportal' or 'tcdr', got {survival_source!r}"
        )
    slides = pd.read_csv(slide_sheet, sep="\t", dtype=str)
    need_columns(slides, ["cohort", "case_id", "slide_id"], slide_sheet)
    types = tuple(sample_types)
    muts = None
    if mut is not None:
        profiled = read_cbioportal_case_list(case_list) if case_list is not None else None
        muts = read_maf(mut, sample_types=types, profiled_samples=profiled)
    rna_table, cnv_table = _read_omics_sources(
        omics_source,
        rnaseq,
        cnv,
        sample_types=types,
        rnaseq_value=rnaseq_value,
        cnv_value=cnv_value,
    )
    result = prepare_cohort(
        cohort=cohort,
        slides=slides[slides["cohort"] == cohort],
        rna=rna_table,
        cnv=cnv_table,
        mut=muts,
        survival=surv,
        families=load_gene_families(gene_families),
        clinical_out=clinical_out,
        omics_out=omics_out,
        report_dir=report_dir,
        transforms=transforms,
        missing_policy=missing_policy,
    )
    log.info("%s: cohort summary %s", cohort, result.summary.iloc[0].to_dict())
    return result


def concat_reports(paths: Sequence[PathLike], out: PathLike) -> pd.DataFrame:
    """Stack per-cohort report TSVs (same columns) into one table and write it atomically."""
    if not paths:
        raise ValueError(f"no per-cohort report to concatenate into {out}")
    tables = [pd.read_csv(p, sep="\t", keep_default_na=False, na_values=[""]) for p in paths]
    first = list(tables[0].columns)
    for path, table in zip(paths, tables, strict=True):
        if list(table.columns) != first:
            raise TCGAFormatError(f"{path}: columns {list(table.columns)} differ from {first}")
    table = pd.concat(tables, ignore_index=True)
    write_table(table, out)
    return table
