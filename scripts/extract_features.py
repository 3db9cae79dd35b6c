"""Snakemake entry point: encode the tiles of a batch of slides into the batch's directory."""

from pathlib import Path

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.features import extract_features_batch

out_dir = Path(snakemake.output[0])  # features/.batches/<batch>: one h5 per slide
extract_features_batch(
    list(snakemake.input.slides),
    list(snakemake.input.coords),
    [out_dir / f"{s}.h5" for s in snakemake.params.slide_ids],
    features=snakemake.params.features,
    reader=snakemake.params.reader,
    threads=snakemake.threads,
    resume_dir=snakemake.params.resume_dir,
)
