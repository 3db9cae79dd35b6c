"""Evaluation stage (rules/evaluate.smk): c-index tables, paper tables, metrics and KM figures."""

from mmsurv.evaluate.missing_table import write_missing_modality_table
from mmsurv.evaluate.paired import write_paired_outputs
from mmsurv.evaluate.stage import (
    km_figure_from_predictions,
    write_cindex_outputs,
    write_metrics_outputs,
    write_paper_tables,
)

__all__ = [
    "km_figure_from_predictions",
    "write_cindex_outputs",
    "write_metrics_outputs",
    "write_missing_modality_table",
    "write_paired_outputs",
    "write_paper_tables",
]
