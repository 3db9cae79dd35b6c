"""Feature stage (rules/features.smk): tile reading, encoders, weights and per-slide feature h5."""

from mmsurv.features.stage import extract_features_batch
from mmsurv.features.weights import fetch_weights

__all__ = ["extract_features_batch", "fetch_weights"]
