"""Demo stage (rules/demo.smk): the embedded synthetic cohort and its Aperio-layout slides."""

from mmsurv.demo.cohort import make_cohort, make_sheet, region_paths
from mmsurv.demo.regions import patch_region_fraction

__all__ = ["make_cohort", "make_sheet", "patch_region_fraction", "region_paths"]
