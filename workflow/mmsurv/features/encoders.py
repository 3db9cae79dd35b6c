"""Patch encoders behind a name registry: one place that knows how to build each network."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "Encoder",
    "register_encoder",
    "TimmEncoder",
    "TIMM_PREFIX",
    "create_encoder",
    "list_encoders",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_INIT = "random-init"
#: Seed of the random initialisation, so that "random-init" features are comparable across jobs.
RANDOM_INIT_SEED = 0

_REGISTRY: dict[str, type[Encoder]] = {}


class Encoder(nn.Module):
    """A patch encoder: (B, 3, S, S) normalised images -> (B, dim) features.

    Subclasses set `dim` and implement `_build()` (the network, random init) and `_embed()`.
    `weights_id` is "random-init" or "<path> sha256:<16 hex>", recorded in feature files.
    """

    name: str = ""
    dim: int = 0
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    #: state-dict key prefixes that the truncated network does not use (ignored when loading)
    unused_prefixes: tuple[str, ...] = ()

    def __init__(self, weights: str | os.PathLike[str] | None = None) -> None:
        """Build the network and load `weights` (a state-dict file) when given."""
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)  # every slide's job gets the same random weights
            self.net = self._build()
        if weights is None:
            self.weights_id = RANDOM_INIT
            log.warning(
                "encoder %s: no weights given, features come from a RANDOMLY INITIALISED "
                "network (fine for the demo, meaningless for real data)",
                self.name,
            )
        else:
            self.weights_id = self._load_weights(Path(weights))
        self._prune()
        self.eval()

    def _build(self) -> nn.Module:
        """Return the randomly initialised network."""
        raise NotImplementedError

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """Map a normalised batch to (B, dim) features."""
        raise NotImplementedError

    def _prune(self) -> None:
        """Drop submodules the forward pass does not use (after weights are loaded)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, S, S) -> features (B, dim)."""
        return self._embed(x)

    def _load_weights(self, path: Path) -> str:
        """Load a state dict (.pth/.pt/.bin/.safetensors) into the network; return its id."""
        if not path.is_file():
            raise FileNotFoundError(
                f"encoder {self.name}: weights file not found: {path}. Download the ImageNet "
                "ResNet-50 weights (torchvision resnet50-0676ba61.pth or timm/resnet50.tv_in1k "
                "model.safetensors) and put the file at that path, or pass weights=None for a "
                "random-init encoder (demo only)."
            )
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        if not isinstance(state, dict):
            raise ValueError(f"encoder {self.name}: {path} does not hold a state dict")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.startswith(("fc.", *self.unused_prefixes))}
        result = self.net.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(self.unused_prefixes)]
        if missing:
            raise ValueError(
                f"encoder {self.name}: weights {path} lack {len(missing)} keys, e.g. {missing[:3]}"
            )
        if result.unexpected_keys:
            log.warning(
                "encoder %s: ignored keys in %s: %s", self.name, path, result.unexpected_keys[:5]
            )
        return f"{path} sha256:{_sha256(path)[:16]}"


def _sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def register_encoder(name: str) -> Callable[[type[Encoder]], type[Encoder]]:
    """Class decorator: register an Encoder subclass under `name`."""

    def deco(cls: type[Encoder]) -> type[Encoder]:
        if name in _REGISTRY:
            log.warning("overwriting encoder %s in the registry", name)
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def list_encoders() -> list[str]:
    """Names of the registered encoders, sorted."""
    return sorted(_REGISTRY)


#: Encoder names "timm:<model>" build any timm architecture (e.g. a pathology foundation model
#: whose weights the user provides), pooled features of its `num_features` width.
TIMM_PREFIX = "timm:"


def create_encoder(name: str, *, weights: str | os.PathLike[str] | None = None) -> Encoder:
    """Instantiate a registered encoder, or "timm:<model>", loading `weights` if given."""
    if name.startswith(TIMM_PREFIX):
        model = name.removeprefix(TIMM_PREFIX)
        cls = type(f"Timm_{model}", (TimmEncoder,), {"name": name, "timm_model": model})
        return cls(weights)
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown encoder {name!r}; registered encoders: {list_encoders()}, or "
            f"{TIMM_PREFIX}<any timm model name>"
        )
    return _REGISTRY[name](weights)


class TimmEncoder(Encoder):
    """Any timm model by name, without its classifier; mean/std/input size from its timm config.

    timm builds the architecture (no download: `pretrained=False`); the weights come from the
    user's file (`features.weights`), e.g. UNI's or CONCH's released state dict.
    """

    timm_model: str = ""

    def _build(self) -> nn.Module:
        """timm.create_model(name, num_classes=0); records dim, mean, std and input size."""
        import timm

        if not timm.is_model(self.timm_model):
            raise ValueError(
                f"encoder {self.name}: timm has no model {self.timm_model!r} "
                f"(timm {timm.__version__}; see timm.list_models())"
            )
        net = timm.create_model(self.timm_model, pretrained=False, num_classes=0)
        cfg = dict(getattr(net, "pretrained_cfg", None) or {})
        self.dim = int(net.num_features)
        self.mean = tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN))  # type: ignore[assignment]
        self.std = tuple(float(v) for v in cfg.get("std", IMAGENET_STD))  # type: ignore[assignment]
        self.input_size = int(cfg.get("input_size", (3, 224, 224))[-1])
        return net

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """timm forward: pooled (B, num_features) features."""
        return self.net(x)


def _timm_resnet50() -> nn.Module:
    """timm's resnet50.tv_in1k architecture (torchvision weights layout), no classifier."""
    import timm

    return timm.create_model("resnet50.tv_in1k", pretrained=False, num_classes=0)


@register_encoder("resnet50_trunc")
class ResNet50Trunc(Encoder):
    """ImageNet ResNet-50 truncated after layer3 + global average pooling (CLAM/MCAT, 1024-d)."""

    dim = 1024
    unused_prefixes = ("layer4.",)

    def _build(self) -> nn.Module:
        """ResNet-50 (layer4 dropped after loading)."""
        return _timm_resnet50()

    def _prune(self) -> None:
        """Remove layer4 and the head, which the truncated network never runs."""
        self.net.layer4 = nn.Identity()

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """Stem + layer1-3, then average pooling."""
        n = self.net
        x = n.maxpool(n.act1(n.bn1(n.conv1(x))))
        x = n.layer3(n.layer2(n.layer1(x)))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


@register_encoder("resnet50")
class ResNet50(Encoder):
    """Full ImageNet ResNet-50 with global average pooling (2048-d)."""

    dim = 2048

    def _build(self) -> nn.Module:
        """ResNet-50 without its classifier."""
        return _timm_resnet50()

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """timm forward (pooled features)."""
        return self.net(x)
