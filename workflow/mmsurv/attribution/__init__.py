"""Attribution stage (rules/attribution.smk): which gene families and genes push the risk up or
down, by Integrated Gradients (Captum) against each fold's training-mean omics."""

from mmsurv.attribution.stage import attribute_model

__all__ = ["attribute_model"]
