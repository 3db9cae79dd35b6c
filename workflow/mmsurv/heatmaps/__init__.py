"""Heatmap stage (rules/heatmaps.smk): per-patch scores of the highest- and lowest-risk cases."""

from mmsurv.heatmaps.stage import make_heatmaps

__all__ = ["make_heatmaps"]
