"""Snakemake entry point: KM figure of out-of-fold risk, optimistic and honest cutpoints."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.evaluate import km_figure_from_predictions

e = snakemake.params.evaluation
km_figure_from_predictions(
    list(snakemake.input.predictions),
    train_risk_files=list(snakemake.input.train_risks),
    cohort=snakemake.wildcards.cohort,
    out_png=snakemake.output.png,
    out_pdf=snakemake.output.pdf,
    out_json=snakemake.output.stats,
    minprop=e["minprop"],
    maxprop=e["maxprop"],
    n_perm=e["n_perm"],
    seed=e["seed"],
    out_prov=snakemake.output.prov,
)
