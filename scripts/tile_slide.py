"""Snakemake entry point: segment one slide; write its coords, QC thumbnail and QuPath GeoJSON."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.tiling import tile_and_save

t = snakemake.params.tiling
tile_and_save(
    snakemake.input.slide,
    coords_h5=snakemake.output.coords,
    qc_png=snakemake.output.qc,
    geojson=snakemake.output.geojson,
    tiling=t,
    fallback_mpp=snakemake.params.fallback_mpp,
)
