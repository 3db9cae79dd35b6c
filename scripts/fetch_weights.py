"""Snakemake entry point: download the encoder weights file and verify its sha256."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.features import fetch_weights

fetch_weights(
    snakemake.params.url,
    snakemake.output[0],
    sha256=snakemake.params.sha256,
    download=snakemake.params.download,
)
