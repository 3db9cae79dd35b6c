"""Snakemake entry point: list one cohort's STAR-counts and gene-level copy-number GDC files."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.acquire import write_cohort_omics_manifest

write_cohort_omics_manifest(
    snakemake.wildcards.cohort,
    snakemake.output.manifest,
    download=snakemake.config["download"],
    omics=snakemake.params.gdc,
    project_ids=snakemake.params.projects,
)
