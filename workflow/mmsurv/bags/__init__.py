"""Bag stage (rules/bags.smk): case patch bags, gene-family omics, cross-validation folds."""

from mmsurv.bags.omics import build_omics_bags
from mmsurv.bags.stage import build_case_bags, make_cohort_splits

__all__ = ["build_case_bags", "build_omics_bags", "make_cohort_splits"]
