"""Snakemake entry point: encode the tiles of one slide into a feature h5."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

import torch

from mmsurv.features import extract_slide_features

f = snakemake.params.features
torch.set_num_threads(snakemake.threads)
extract_slide_features(
    snakemake.input.slide,
    snakemake.input.coords,
    snakemake.output[0],
    encoder=f["encoder"],
    weights=f["weights"],
    reader=snakemake.params.reader,
    batch_size=f["batch_size"],
    num_workers=f["num_workers"],
    device=f["device"],
)
