"""Training stage (rules/training.smk): one cancer x model x fold job, its predictions and logs."""

from mmsurv.training.params import model_params
from mmsurv.training.train import train_fold

__all__ = ["model_params", "train_fold"]
