"""Tiling stage (rules/tiling.smk): tissue segmentation, 256 px tile coordinates, QC images."""

from mmsurv.tiling.stage import cohort_qc_sheet, tile_and_save

__all__ = ["cohort_qc_sheet", "tile_and_save"]
