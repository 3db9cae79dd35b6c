"""Snakemake entry point: one TCGA cohort's clinical and omics tables plus acquisition reports."""

from pathlib import Path

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.acquire import prepare_cohort_from_files

inp, out = snakemake.input, snakemake.output
prepare_cohort_from_files(
    cohort=snakemake.wildcards.cohort,
    slide_sheet=inp.sheet,
    rnaseq=inp.rnaseq,
    cnv=inp.cnv,
    mut=inp.get("mut"),
    case_list=inp.get("case_list"),
    survival=inp.survival,
    survival_source=snakemake.params.survival_source,
    gene_families=inp.gene_families,
    clinical_out=out.clinical,
    omics_out=out.omics,
    report_dir=Path(out.summary).parent,
    transforms=snakemake.params.transforms,
    sample_types=snakemake.params.sample_types,
    missing_policy=snakemake.params.missing_policy,
    omics_source=snakemake.params.omics_source,
    rnaseq_value=snakemake.params.rnaseq_value,
    cnv_value=snakemake.params.cnv_value,
)
