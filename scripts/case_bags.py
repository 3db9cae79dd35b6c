"""Snakemake entry point: concatenate slide features into one bag per case."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.bags import build_case_bags

build_case_bags(
    list(snakemake.input),
    snakemake.params.slide_table,
    snakemake.output[0],
)
