"""Snakemake entry point: one QC contact sheet per cohort (every slide's tissue/tile overlay)."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.tiling import cohort_qc_sheet

cohort_qc_sheet(
    list(snakemake.input.qc),
    list(snakemake.input.coords),
    list(snakemake.params.slides),
    snakemake.output[0],
)
