"""Snakemake entry point: one cohort's MCAT-style table → clinical and omics tables."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.acquire import write_cohort_tables

write_cohort_tables(
    snakemake.input.table,
    cohort=snakemake.wildcards.cohort,
    clinical_out=snakemake.output.clinical,
    omics_out=snakemake.output.omics,
    gene_families_csv=snakemake.input.gene_families,
    report_out=snakemake.output.report,
    unsuffixed=snakemake.params.unsuffixed,
)
