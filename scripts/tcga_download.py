"""Snakemake entry point: download one omics or survival source, resumable and retried."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.acquire import fetch_source

fetch_source(
    snakemake.params.url,
    snakemake.output[0],
    md5=snakemake.params.md5,
    label=snakemake.params.label,
    download=snakemake.config["download"],
)
