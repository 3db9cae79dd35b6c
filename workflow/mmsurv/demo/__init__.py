"""Demo stage (rules/demo.smk): the embedded synthetic cohort and its Aperio-layout slides."""

from mmsurv.demo.cohort import make_cohort, make_sheet

__all__ = ["make_cohort", "make_sheet"]
