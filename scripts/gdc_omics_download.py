"""Snakemake entry point: download one cohort's GDC files of one omics modality, md5-verified."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.acquire import fetch_omics_files

fetch_omics_files(
    snakemake.input.manifest,
    snakemake.wildcards.modality,
    snakemake.output.files,
    omics_dir=snakemake.params.omics_dir,
    download=snakemake.config["download"],
)
