"""Snakemake entry point: extract the needed files of one cohort's cBioPortal study archive."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.acquire import unpack_cbioportal_study

unpack_cbioportal_study(
    snakemake.input.archive,
    dict(snakemake.output.items()),
    study=snakemake.params.study,
)
