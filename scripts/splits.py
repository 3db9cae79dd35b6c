"""Snakemake entry point: stratified cross-validation folds of one cohort."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.bags import make_cohort_splits

make_cohort_splits(
    clinical_tsv=snakemake.input.clinical,
    omics_parquet=snakemake.input.omics,
    slide_cases=snakemake.params.slide_cases,
    out_tsv=snakemake.output.splits,
    out_dropped=snakemake.output.dropped,
    omics_missing_json=snakemake.input.omics_missing,
    n_folds=snakemake.params.n_folds,
    seed=snakemake.params.seed,
    require_slides=snakemake.params.require_slides,
    user_split_csvs=list(snakemake.input.user_splits) or None,
    complete_cases=snakemake.params.complete_cases,
    site_preserved=snakemake.params.site_preserved,
)
