"""Acquire stage (rules/acquire.smk): GDC slides and omics, cBioPortal, TCGA-CDR, bring-your-own."""

from mmsurv.acquire.byo import write_byo_sheet, write_cohort_tables
from mmsurv.acquire.cbioportal import unpack_cbioportal_study
from mmsurv.acquire.cohort import concat_reports, prepare_cohort_from_files
from mmsurv.acquire.gdc_omics import fetch_omics_files, write_cohort_omics_manifest
from mmsurv.acquire.gdc_slides import (
    fetch_slide,
    write_cohort_manifest,
    write_sheet_from_manifests,
)
from mmsurv.acquire.transfer import fetch_source

__all__ = [
    "concat_reports",
    "fetch_omics_files",
    "fetch_slide",
    "fetch_source",
    "prepare_cohort_from_files",
    "unpack_cbioportal_study",
    "write_byo_sheet",
    "write_cohort_manifest",
    "write_cohort_omics_manifest",
    "write_cohort_tables",
    "write_sheet_from_manifests",
]
