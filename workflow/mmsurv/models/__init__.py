"""Survival models, one per file, behind a timm-style registry (deep models and linear floors)."""

# Imported to register the models (explicit, as timm does; no plugin discovery).
from mmsurv.models import (  # noqa: F401
    attn_mil,
    clam_sb,
    cox_clinical,
    coxnet_omic,
    coxnet_path,
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
from mmsurv.models._linear import LinearFloor
from mmsurv.models._registry import (
    create_floor,
    create_model,
    list_floors,
    list_models,
    model_class,
    model_modalities,
    register_floor,
    register_model,
)

__all__ = [
    "LinearFloor",
    "ModelOutput",
    "create_floor",
    "create_model",
    "list_floors",
    "list_models",
    "model_class",
    "model_modalities",
    "register_floor",
    "register_model",
]
