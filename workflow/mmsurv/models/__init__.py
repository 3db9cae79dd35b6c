"""Survival models, one per file, behind a timm-style registry."""

from mmsurv.models import attn_mil, ours, snn  # noqa: F401 - imported to register the models
from mmsurv.models._layers import ModelOutput
from mmsurv.models._registry import (
    create_model,
    list_models,
    model_class,
    model_modalities,
    register_model,
)

__all__ = [
    "ModelOutput",
    "create_model",
    "list_models",
    "model_class",
    "model_modalities",
    "register_model",
]
