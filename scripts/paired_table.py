"""Snakemake entry point: each model against the KM model, paired over runs and cases."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.evaluate import write_paired_outputs

write_paired_outputs(
    list(snakemake.input.predictions),
    folds_tsv=snakemake.input.folds,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    reference=snakemake.params.reference,
    n_bootstrap=snakemake.params.n_bootstrap,
    seed=snakemake.params.seed,
    level=snakemake.params.ci_level,
)
