"""Snakemake entry point: join the cohort manifests into the slide sheet (config `samples`)."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.acquire import write_sheet_from_manifests

write_sheet_from_manifests(
    snakemake.input.manifests, snakemake.params.slide_dir, snakemake.output.sheet
)
