"""Snakemake entry point: encode the tiles of a batch of slides, one feature h5 per slide."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.features import extract_features_batch

extract_features_batch(
    list(snakemake.input.slides),
    list(snakemake.input.coords),
    list(snakemake.output),
    features=snakemake.params.features,
    reader=snakemake.params.reader,
    threads=snakemake.threads,
)
