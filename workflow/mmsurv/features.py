"""Patch encoders behind a name registry, and per-slide feature extraction to HDF5."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mmsurv.io import atomic_path
from mmsurv.wsi import Reader, open_slide, read_coords_h5, read_tile

__all__ = [
    "Encoder",
    "register_encoder",
    "create_encoder",
    "list_encoders",
    "extract_slide_features",
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


def create_encoder(name: str, *, weights: str | os.PathLike[str] | None = None) -> Encoder:
    """Instantiate a registered encoder by name, loading `weights` if given."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown encoder {name!r}; registered encoders: {list_encoders()}")
    return _REGISTRY[name](weights)


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


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


class _TileDataset(Dataset):
    """Tiles of one slide as uint8 CHW tensors; the slide is opened once per worker (lazily)."""

    def __init__(
        self,
        slide_path: str,
        coords: np.ndarray,
        attrs: dict[str, Any],
        reader: Reader,
        input_size: int,
    ) -> None:
        self.slide_path = slide_path
        self.coords = coords
        self.attrs = attrs
        self.reader = reader
        self.input_size = input_size
        self._slide: Any = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.coords)

    def _get_slide(self) -> Any:
        """The slide handle of this process (opened on first use)."""
        if self._slide is None or self._pid != os.getpid():
            self._slide = open_slide(self.slide_path, self.reader)
            self._pid = os.getpid()
        return self._slide

    def __getitem__(self, idx: int) -> torch.Tensor:
        import cv2

        tile = read_tile(self._get_slide(), self.coords[idx], self.attrs)
        if tile.shape[0] != self.input_size:
            interp = cv2.INTER_AREA if tile.shape[0] > self.input_size else cv2.INTER_LINEAR
            tile = cv2.resize(tile, (self.input_size, self.input_size), interpolation=interp)
        return torch.from_numpy(np.ascontiguousarray(tile.transpose(2, 0, 1)))

    def close(self) -> None:
        """Close this process's slide handle."""
        if self._slide is not None:
            self._slide.close()
            self._slide = None


def _resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; other strings are passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def extract_slide_features(
    slide_path: str | os.PathLike[str],
    coords_h5: str | os.PathLike[str],
    out_h5: str | os.PathLike[str],
    *,
    encoder: str | Encoder = "resnet50_trunc",
    weights: str | None = None,
    reader: Reader = "openslide",
    batch_size: int = 64,
    num_workers: int = 0,
    device: str = "auto",
) -> int:
    """Encode every tile of a coords file into `out_h5` (features + coords); return N.

    `encoder` is a registered name (built with `weights`) or an already built Encoder, so
    that a batch of slides loads the network once. Tiles are read at the target
    magnification, resized to the encoder's input size and ImageNet-normalised on the device.
    The output is written to a temp file and renamed only when complete, so an interrupted
    extraction leaves nothing at `out_h5`.
    """
    slide_path, out_h5 = str(slide_path), Path(out_h5)
    coords, attrs = read_coords_h5(coords_h5)
    if not Path(slide_path).is_file():
        raise FileNotFoundError(f"slide file not found: {slide_path}")
    if isinstance(encoder, Encoder):
        if weights is not None:
            raise ValueError("pass weights to create_encoder, not with an Encoder instance")
        enc = encoder
    else:
        enc = create_encoder(encoder, weights=weights)
    enc.eval()
    dev = _resolve_device(device)
    enc.to(dev, memory_format=torch.channels_last)  # ~1.5x faster convolutions on CPU
    n = len(coords)
    feats = np.zeros((n, enc.dim), np.float32)
    if n:
        mean = torch.tensor(enc.mean, device=dev).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(enc.std, device=dev).view(1, 3, 1, 1) * 255.0
        dataset = _TileDataset(slide_path, coords, attrs, reader, enc.input_size)
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            pin_memory=dev.type == "cuda",
            persistent_workers=False,
        )
        start = 0
        try:
            with torch.inference_mode():
                for batch in loader:
                    x = (batch.to(dev, non_blocking=True).float() - mean) / std
                    x = x.contiguous(memory_format=torch.channels_last)
                    out = enc(x).float().cpu().numpy()
                    feats[start : start + len(out)] = out
                    start += len(out)
        finally:
            dataset.close()
        if start != n:
            raise RuntimeError(f"{slide_path}: encoded {start} tiles, expected {n}")
    else:
        log.warning(
            "slide %s: 0 tiles in %s; writing empty (0, %d) features",
            slide_path,
            coords_h5,
            enc.dim,
        )

    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("features", data=feats)
        dset = f.create_dataset("coords", data=coords.astype(np.int64).reshape(-1, 2))
        for key, value in attrs.items():
            dset.attrs[key] = value
        f.attrs["encoder"] = enc.name
        f.attrs["weights"] = enc.weights_id
        f.attrs["feature_dim"] = int(enc.dim)
        f.attrs["target_magnification"] = float(attrs.get("target_magnification", np.nan))
        f.attrs["patch_size"] = int(attrs["patch_size"])
        f.attrs["n_tiles"] = int(n)
    return n
