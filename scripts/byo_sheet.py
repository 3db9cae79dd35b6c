"""Snakemake entry point: the slide sheet of MCAT-style tables whose slides are in a directory."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.acquire import write_byo_sheet

write_byo_sheet(
    dict(zip(snakemake.params.cohorts, snakemake.input.tables, strict=True)),
    snakemake.params.slide_dir,
    snakemake.output.sheet,
    require_slides=snakemake.params.require_slides,
)
