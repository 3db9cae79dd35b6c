"""timm-style model registry: `@register_model` factories, `create_model`, `list_models`.

Linear floors (not torch modules) have their own `@register_floor` factories, `create_floor`
and `list_floors`; `model_modalities` answers for both kinds.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from mmsurv.model_catalog import MODEL_INPUTS, is_linear_floor
from mmsurv.models._linear import LinearFloor

__all__ = [
    "create_floor",
    "create_model",
    "list_floors",
    "list_models",
    "model_class",
    "model_modalities",
    "register_floor",
    "register_model",
]

# clinical: the clinical covariates, fed as one more omics block (models/*_clinical.py)
MODALITIES = frozenset({"path", "omic", "clinical"})

_model_entrypoints: dict[str, Callable[..., nn.Module]] = {}
_model_classes: dict[str, type[nn.Module]] = {}
_floor_entrypoints: dict[str, Callable[..., LinearFloor]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(fn: F) -> F:
    """Register a model factory under its function name (its return annotation gives the class)."""
    name = fn.__name__
    ret = inspect.signature(fn, eval_str=True).return_annotation
    if not (inspect.isclass(ret) and issubclass(ret, nn.Module)):
        raise TypeError(f"model factory {name!r} must be annotated to return an nn.Module class")
    mods = getattr(ret, "modalities", None)
    if not isinstance(mods, frozenset) or not mods or not mods <= MODALITIES:
        raise TypeError(
            f"{ret.__name__}.modalities must be a non-empty subset of {set(MODALITIES)}"
        )
    if "clinical" in mods and "omic" not in mods:
        raise TypeError(f"{ret.__name__}: a deep model reads clinical covariates as an omics block")
    if MODEL_INPUTS.get(name) != mods:
        raise TypeError(
            f"model {name!r}: modalities {set(mods)} disagree with mmsurv.model_catalog "
            f"({set(MODEL_INPUTS.get(name, ()))}); add or fix its entry there"
        )
    if name in _model_entrypoints:
        warnings.warn(f"Overwriting {name} in registry with {fn.__module__}.{name}", stacklevel=2)
    _model_entrypoints[name] = fn
    _model_classes[name] = ret
    return fn


def list_models() -> list[str]:
    """Names of all registered deep (torch) models, sorted; the linear floors: `list_floors`."""
    return sorted(_model_entrypoints)


FF = TypeVar("FF", bound=Callable[..., LinearFloor])


def register_floor(fn: FF) -> FF:
    """Register a linear floor factory under its function name, checked against the catalog."""
    name = fn.__name__
    if not is_linear_floor(name):
        raise TypeError(f"floor {name!r} is not in mmsurv.model_catalog.LINEAR_FLOORS; add it")
    spec = fn()
    if not isinstance(spec, LinearFloor) or spec.name != name:
        raise TypeError(f"floor factory {name!r} must return LinearFloor(name={name!r}, ...)")
    if MODEL_INPUTS.get(name) != spec.modalities:
        raise TypeError(
            f"floor {name!r}: input {set(spec.modalities)} disagrees with mmsurv.model_catalog "
            f"({set(MODEL_INPUTS.get(name, ()))}); add or fix its entry there"
        )
    if name in _floor_entrypoints:
        warnings.warn(f"Overwriting {name} in registry with {fn.__module__}.{name}", stacklevel=2)
    _floor_entrypoints[name] = fn
    return fn


def list_floors() -> list[str]:
    """Names of all registered linear floor models, sorted."""
    return sorted(_floor_entrypoints)


def create_floor(name: str, **kwargs: Any) -> LinearFloor:
    """The linear floor `name` with its model kwargs; an unknown kwarg names the config key."""
    if name not in _floor_entrypoints:
        raise ValueError(f"Unknown floor {name!r}; registered floors: {', '.join(list_floors())}")
    fn = _floor_entrypoints[name]
    unknown = sorted(set(kwargs) - set(inspect.signature(fn).parameters))
    if unknown:
        raise ValueError(
            f"training.model_kwargs.{name}: unknown key(s) {unknown}; allowed: "
            f"{sorted(inspect.signature(fn).parameters)}"
        )
    return fn(**kwargs)


def _check_name(name: str) -> None:
    if name not in _model_entrypoints:
        known = ", ".join(sorted([*_model_entrypoints, *_floor_entrypoints]))
        raise ValueError(f"Unknown model {name!r}; registered models: {known}")


def model_class(name: str) -> type[nn.Module]:
    """The nn.Module class a registered factory builds."""
    _check_name(name)
    return _model_classes[name]


def model_modalities(name: str) -> frozenset[str]:
    """Which inputs ('path', 'omic'; 'clinical' for a floor) the model consumes."""
    if name in _floor_entrypoints:
        return create_floor(name).modalities
    return model_class(name).modalities  # type: ignore[attr-defined,no-any-return]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model by name; unknown names raise ValueError listing the known ones."""
    _check_name(name)
    return _model_entrypoints[name](**kwargs)
