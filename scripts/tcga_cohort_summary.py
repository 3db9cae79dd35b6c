"""Snakemake entry point: stack the per-cohort acquisition reports into the report's tables."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.acquire import concat_reports

concat_reports(snakemake.input.summaries, snakemake.output.summary)
concat_reports(snakemake.input.families, snakemake.output.families)
concat_reports(snakemake.input.omics_reports, snakemake.output.omics_report)
