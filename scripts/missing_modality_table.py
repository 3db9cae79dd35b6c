"""Snakemake entry point: c-index with a modality missing (both, path only, omics only)."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.evaluate import write_missing_modality_table

write_missing_modality_table(
    list(snakemake.input),
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    model_order=snakemake.params.models,
    cohort_order=snakemake.params.cohorts,
    ddof=snakemake.params.std_ddof,
)
