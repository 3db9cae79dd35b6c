"""Snakemake entry point: gene-family attribution (Integrated Gradients) of one cohort x model."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from pathlib import Path

from mmsurv.attribution import attribute_model

a = snakemake.params.attribution
attribute_model(
    cohort=snakemake.wildcards.cohort,
    model_name=snakemake.wildcards.model,
    checkpoints=list(snakemake.input.checkpoints),
    omics_parquet=snakemake.input.omics,
    families_json=snakemake.input.families,
    bags_h5=snakemake.input.get("bags"),
    clinical_tsv=snakemake.input.get("clinical"),
    out_dir=str(Path(snakemake.output.genes).parent),
    n_steps=a["n_steps"],
    top_genes=a["top_genes"],
    device=snakemake.params.device,
    num_threads=snakemake.threads,
)
