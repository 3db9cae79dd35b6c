"""Snakemake entry point: Kaplan-Meier figure of pooled out-of-fold risk at the maxstat cutpoint."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.evaluate import km_figure_from_predictions

e = snakemake.params.evaluation
km_figure_from_predictions(
    list(snakemake.input),
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
