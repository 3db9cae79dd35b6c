"""Snakemake entry point: list one cohort's open-access diagnostic slides on the GDC."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.acquire import write_cohort_manifest

write_cohort_manifest(
    snakemake.wildcards.cohort,
    snakemake.output.manifest,
    download=snakemake.config["download"],
    project_ids=snakemake.params.projects,
)
