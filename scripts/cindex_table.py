"""Snakemake entry point: per-fold c-index and the mean +- std table."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.evaluate import write_cindex_outputs

write_cindex_outputs(
    list(snakemake.input),
    folds_tsv=snakemake.output.folds,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    model_order=snakemake.params.models,
    cohort_order=snakemake.params.cohorts,
    out_prov=snakemake.output.prov,
    ddof=snakemake.params.std_ddof,
)
