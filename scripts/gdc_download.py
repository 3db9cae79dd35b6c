"""Snakemake entry point: download one slide from the GDC, resumable, retried and md5-verified."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.acquire import fetch_slide

f = snakemake.params.gdc_file
fetch_slide(
    f["file_id"],
    snakemake.output.slide,
    md5=f["md5sum"],
    size=f["file_size"],
    slide_id=snakemake.wildcards.slide,
    download=snakemake.config["download"],
)
