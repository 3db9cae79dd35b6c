"""Survival models, one per file, behind a timm-style registry (deep models and linear floors)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mmsurv.models import _registry
from mmsurv.models._layers import ModelOutput
from mmsurv.models._linear import LinearFloor
from mmsurv.models._registry import register_floor, register_model

if TYPE_CHECKING:
    from torch import nn

# Every registered name -> the module that registers it. A module is imported when one of its
# models is asked for (not at `import mmsurv.models`), so a train job imports only its own
# model: POT (ours) and the other models' layers cost each job seconds of start-up otherwise.
MODEL_MODULES: dict[str, str] = {
    "attn_mil": "attn_mil",
    "clam_sb": "clam_sb",
    "dualtrans": "dualtrans",
    "hfbsurv": "hfbsurv",
    "mcat": "mcat",
    "ours": "ours",
    "ours_clinical": "ours_clinical",
    "ours_wo_bdca": "ours",
    "ours_wo_ot": "ours",
    "ours_wo_simme": "ours",
    "porpoise": "porpoise",
    "porpoise_clinical": "porpoise_clinical",
    "snn": "snn",
    "snn_clinical": "snn_clinical",
    "snn_trans": "snn_trans",
    "transmil": "transmil",
}
FLOOR_MODULES: dict[str, str] = {
    "cox_clinical": "cox_clinical",
    "coxnet_omic": "coxnet_omic",
    "coxnet_path": "coxnet_path",
}


def _load(name: str | None = None) -> None:
    """Import the module registering `name`; every model module when None or unknown."""
    table = {**MODEL_MODULES, **FLOOR_MODULES}
    modules = [table[name]] if name in table else sorted(set(table.values()))
    for module in modules:
        importlib.import_module(f"mmsurv.models.{module}")


def list_models() -> list[str]:
    """Names of all registered deep (torch) models, sorted; the linear floors: `list_floors`."""
    _load()
    return _registry.list_models()


def list_floors() -> list[str]:
    """Names of all registered linear floor models, sorted."""
    _load()
    return _registry.list_floors()


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model by name; unknown names raise ValueError listing the known ones."""
    _load(name)
    return _registry.create_model(name, **kwargs)


def create_floor(name: str, **kwargs: Any) -> LinearFloor:
    """The linear floor `name` with its model kwargs; an unknown kwarg names the config key."""
    _load(name)
    return _registry.create_floor(name, **kwargs)


def model_class(name: str) -> type[nn.Module]:
    """The nn.Module class a registered factory builds."""
    _load(name)
    return _registry.model_class(name)


def model_modalities(name: str) -> frozenset[str]:
    """Which inputs ('path', 'omic'; 'clinical' for a floor) the model consumes."""
    _load(name)
    return _registry.model_modalities(name)


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
