"""Snakemake entry point: time-dependent AUC, integrated Brier score, bootstrap c-index CI."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.evaluate import write_metrics_outputs

e = snakemake.params.evaluation
write_metrics_outputs(
    list(snakemake.input.predictions),
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    folds_tsv=snakemake.output.folds,
    model_order=snakemake.params.models,
    cohort_order=snakemake.params.cohorts,
    horizons=e["horizons"],
    horizon_quantiles=e["horizon_quantiles"],
    ibs_range=e["ibs_range"],
    ibs_points=e["ibs_points"],
    n_bootstrap=e["n_bootstrap"],
    seed=e["seed"],
    ci_level=e["ci_level"],
    out_prov=snakemake.output.prov,
    ddof=snakemake.params.std_ddof,
)
