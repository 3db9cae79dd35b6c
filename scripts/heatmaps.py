"""Snakemake entry point: heatmaps of the highest- and lowest-risk held-out cases of a model."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.heatmaps import make_heatmaps

h = snakemake.params.heatmaps
make_heatmaps(
    cohort=snakemake.wildcards.cohort,
    model_name=snakemake.wildcards.model,
    predictions=list(snakemake.input.predictions),
    bags_h5=snakemake.input.bags,
    omics_parquet=snakemake.input.omics,
    families_json=snakemake.input.families,
    feature_files=list(snakemake.input.features),
    slide_files=dict(snakemake.params.slide_files),
    slides_dir=snakemake.output.slides,
    figures_dir=snakemake.output.figures,
    pdf=snakemake.output.pdf,
    tsv=snakemake.output.cases,
    reader=snakemake.params.reader,
    n_high=h["n_high"],
    n_low=h["n_low"],
    top_patches=h["top_patches"],
    num_threads=snakemake.threads,
    clinical_tsv=snakemake.input.get("clinical"),
)
