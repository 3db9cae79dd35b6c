"""Snakemake entry point: one-page summary of what the results rest on."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.report import write_run_summary

write_run_summary(
    snakemake.output[0],
    config=snakemake.params.config,
    cindex_csv=snakemake.input.table,
    km_stats=list(snakemake.input.km),
    splits=list(snakemake.input.splits),
    metrics_csv=snakemake.input.metrics,
    effective_config=snakemake.params.effective_config,
    dropped=list(snakemake.input.dropped),
    omics_missing=list(snakemake.input.omics_missing),
)
