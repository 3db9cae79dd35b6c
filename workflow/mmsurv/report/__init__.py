"""Report stage (rules/report.smk): the run summary that heads the HTML report."""

from mmsurv.report.stage import write_run_summary

__all__ = ["write_run_summary"]
