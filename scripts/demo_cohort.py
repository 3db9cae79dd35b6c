"""Snakemake entry point: generate the synthetic demo cohorts."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from mmsurv.demo import make_cohort
from mmsurv.io import read_slide_sheet

p = snakemake.params
sheet = read_slide_sheet(snakemake.input.sheet, p.cohorts)
# One slide per process (rule threads). fork, not spawn: a spawned child re-runs the main
# module, which here is this script as Snakemake wrote it.
with ProcessPoolExecutor(snakemake.threads, mp_context=multiprocessing.get_context("fork")) as pool:
    for cohort in p.cohorts:
        make_cohort(
            cohort,
            sheet[sheet["cohort"] == cohort].reset_index(drop=True),
            gene_families_csv=snakemake.input.gene_families,
            omics_out=p.omics[cohort],
            clinical_out=p.clinical[cohort],
            seed=p.seed,
            genes_per_family=p.genes_per_family,
            executor=pool,
        )
