"""Snakemake entry point: gene-family omics table of one cohort."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.bags import build_omics_bags

build_omics_bags(
    snakemake.input.omics,
    snakemake.input.gene_families,
    snakemake.output.table,
    snakemake.output.families,
    impute=snakemake.params.impute,
    out_missing=snakemake.output.missing,
)
