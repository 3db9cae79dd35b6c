"""Snakemake entry point: train one cancer x model x fold x seed and score the held-out fold."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from pathlib import Path

from mmsurv.training import train_fold

params = dict(snakemake.params.training)  # model_params(config training, model), in the rule
# Torch threads follow the rule (resources.train.threads); not a training: config key.
params["num_threads"] = snakemake.threads
params["missing_modality"] = snakemake.params.missing_modality
train_fold(
    cohort=snakemake.wildcards.cohort,
    model_name=snakemake.wildcards.model,
    fold=int(snakemake.wildcards.fold),
    bags_h5=snakemake.input.get("bags"),
    omics_parquet=snakemake.input.omics,
    families_json=snakemake.input.families,
    clinical_tsv=snakemake.input.clinical,
    splits_tsv=snakemake.input.splits,
    out_dir=str(Path(snakemake.output.predictions).parent),
    params=params,
    seed=int(snakemake.wildcards.seed),  # one job per training.seeds entry
    device=params["device"],
)
