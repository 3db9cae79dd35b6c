"""timm-style model registry: `@register_model` factories, `create_model`, `list_models`."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from mmsurv.model_catalog import MODEL_INPUTS

__all__ = ["create_model", "list_models", "model_class", "model_modalities", "register_model"]

MODALITIES = frozenset({"path", "omic"})

_model_entrypoints: dict[str, Callable[..., nn.Module]] = {}
_model_classes: dict[str, type[nn.Module]] = {}

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
    """Names of all registered models, sorted."""
    return sorted(_model_entrypoints)


def _check_name(name: str) -> None:
    if name not in _model_entrypoints:
        raise ValueError(f"Unknown model {name!r}; registered models: {', '.join(list_models())}")


def model_class(name: str) -> type[nn.Module]:
    """The nn.Module class a registered factory builds."""
    _check_name(name)
    return _model_classes[name]


def model_modalities(name: str) -> frozenset[str]:
    """Which inputs ({'path', 'omic'}) the model consumes."""
    return model_class(name).modalities  # type: ignore[attr-defined,no-any-return]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model by name; unknown names raise ValueError listing the known ones."""
    _check_name(name)
    return _model_entrypoints[name](**kwargs)
