"""Survival models, one per file, behind a timm-style registry."""

# Imported to register the models (explicit, as timm does; no plugin discovery).
from mmsurv.models import (  # noqa: F401
    attn_mil,
    clam_sb,
    dualtrans,
    hfbsurv,
    mcat,
    ours,
    porpoise,
    snn,
    snn_trans,
    transmil,
)
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
