"""Patch encoders behind a name registry, and per-slide feature extraction to HDF5."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import shutil
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tifffile
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, get_worker_info

from mmsurv.features.tileread import (
    FAST_MODES,
    FastMode,
    RawTileReader,
    TileReadError,
    TileUnavailable,
    fast_read_mask,
)
from mmsurv.io import atomic_path, py_value
from mmsurv.tiling.wsi import (
    Reader,
    SlideError,
    open_slide,
    read_coords_h5,
    read_patch_region,
    resize_patch,
    verify_slide_file,
)

__all__ = [
    "Encoder",
    "register_encoder",
    "TimmEncoder",
    "TIMM_PREFIX",
    "create_encoder",
    "list_encoders",
    "extract_features",
    "extract_slide_features",
    "SlideJob",
    "TileBatches",
    "PRECISIONS",
    "normalisation",
    "input_resize_label",
    "prepare_batch",
    "jpeg_streams",
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


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------

#: Errors a reader or decoder raises on a bad tile (libjpeg: RuntimeError; openslide: its own).
_TILE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, LookupError)
try:
    import openslide

    _TILE_ERRORS += (openslide.OpenSlideError,)
except ImportError:  # pragma: no cover - openslide is a dependency
    pass

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class SlideJob:
    """One slide to encode: its file, tile coords and tiling attrs, and its output path."""

    slide: str
    coords: np.ndarray
    attrs: dict[str, Any]
    out: Path
    keep_finished: bool = False  # also link the finished output under resume_path(out)


class _SlideState:
    """Reading state of one slide in one process: reader handle, raw tiles, fast-path mask."""

    def __init__(
        self,
        job: SlideJob,
        reader: Reader,
        fast_tiles: FastMode,
        size: int | None,
        raw_jpeg: bool = False,
    ) -> None:
        self.job, self.reader = job, reader
        self.level = int(job.attrs["read_level"])
        self.read_size = int(job.attrs["read_size"])
        self.patch_size = int(job.attrs["patch_size"])
        self.size = self.patch_size if size is None else int(size)
        # undecoded JPEG files for the device when a patch is exactly one stored tile
        self.raw_jpeg = raw_jpeg and self.size == self.patch_size == self.read_size
        self.handle: Any = open_slide(job.slide, reader)
        self.downsample = float(self.handle.level_downsamples[self.level])
        self.raw: RawTileReader | None = None
        self.fast = np.zeros(len(job.coords), dtype=bool)
        if fast_tiles != "never":
            try:
                self.raw = RawTileReader(job.slide, self.handle.level_dimensions)
            except (tifffile.TiffFileError, OSError, ValueError) as err:  # not a TIFF: general
                log.debug("slide %s: no raw tile access (%s)", job.slide, err)
            else:
                self.fast = fast_read_mask(
                    job.coords,
                    read_level=self.level,
                    read_size=self.read_size,
                    downsample=self.downsample,
                    level=self.raw.level(self.level),
                    mode=fast_tiles,
                )

    def read(self, j: int) -> tuple[np.ndarray | bytes, bool]:
        """Tile j at the encoder's input size and whether the raw-tile path served it.

        With ``raw_jpeg``, a tile that is exactly one stored JPEG tile comes back undecoded,
        as a complete JPEG file (bytes), for the caller to decode on its device.
        """
        x, y = (int(v) for v in self.job.coords[j])
        region, fast = None, False
        if self.fast[j] and self.raw is not None:
            px, py = round(x / self.downsample), round(y / self.downsample)
            if self.raw_jpeg:
                with contextlib.suppress(TileUnavailable, TileReadError):  # general path decides
                    return self.raw.jpeg(self.level, px, py, self.read_size, self.read_size), True
            try:
                region = self.raw.read_region(self.level, px, py, self.read_size, self.read_size)
                fast = True
            except TileUnavailable:
                pass
            except TileReadError as err:  # corrupt tile: the general path decides
                log.debug("%s", err)
        if region is None:
            try:
                region = read_patch_region(self.handle, (x, y), self.job.attrs)
            except _TILE_ERRORS:
                self._reopen()  # openslide refuses every read after one error
                raise
        tile = resize_patch(region, self.patch_size)
        return resize_patch(tile, self.size), fast

    def _reopen(self) -> None:
        """Replace the reader handle (an openslide handle is unusable after a read error)."""
        self.handle.close()
        self.handle = open_slide(self.job.slide, self.reader)

    def close(self) -> None:
        """Close the reader handle and the raw tile reader."""
        self.handle.close()
        if self.raw is not None:
            self.raw.close()


class TileBatches(Dataset):
    """Item i = one batch of tiles of one slide, as uint8 (B, S, S, 3) plus read statistics.

    S is `input_size`, or the slide's patch size when None (the caller then resizes on the
    device, which is cheaper than cv2 on the loader's cores when a GPU encodes).

    Items run through the slides in order, so a DataLoader with workers (or the background
    thread of `extract_features`) reads the next slide's tiles while the current one is
    encoded. Each process opens a slide once, when it first reads from it, and closes it when
    it moves to the next. A tile that cannot be read is replaced by zeros and reported in
    `bad` (indices within the slide); the caller decides whether the slide is still usable.
    """

    def __init__(
        self,
        jobs: Sequence[SlideJob],
        *,
        batch_size: int,
        reader: Reader = "openslide",
        input_size: int | None = 224,
        fast_tiles: FastMode = "aligned",
        raw_jpeg: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if fast_tiles not in FAST_MODES:
            raise ValueError(f"fast_tiles must be one of {FAST_MODES}, got {fast_tiles!r}")
        self.jobs = list(jobs)
        self.reader, self.input_size, self.fast_tiles = reader, input_size, fast_tiles
        self.raw_jpeg = raw_jpeg
        self.items = [
            (k, start, min(start + batch_size, len(job.coords)))
            for k, job in enumerate(self.jobs)
            for start in range(0, len(job.coords), batch_size)
        ]
        self._state: tuple[int, int, _SlideState] | None = None  # (pid, slide index, state)

    def __len__(self) -> int:
        return len(self.items)

    def _slide(self, k: int) -> _SlideState:
        """This process's reading state for slide k (opened on first use)."""
        pid = os.getpid()
        if self._state is not None and self._state[:2] == (pid, k):
            return self._state[2]
        if self._state is not None and self._state[0] == pid:
            self._state[2].close()
        state = _SlideState(
            self.jobs[k], self.reader, self.fast_tiles, self.input_size, self.raw_jpeg
        )
        self._state = (pid, k, state)
        return state

    def __getitem__(self, i: int) -> dict[str, Any]:
        k, start, stop = self.items[i]
        state = self._slide(k)
        size = state.size
        buf = torch.empty((stop - start, size, size, 3), dtype=torch.uint8)
        if get_worker_info() is not None:
            buf.share_memory_()  # filled in place, so the DataLoader sends it without a copy
        tiles = buf.numpy()
        bad: list[int] = []
        jpeg_rows: list[int] = []
        jpeg: list[bytes] = []
        n_fast, error = 0, ""
        for r, j in enumerate(range(start, stop)):
            try:
                tile, fast = state.read(j)
            except _TILE_ERRORS as err:
                tiles[r] = 0
                bad.append(j)
                error = error or f"tile {j} at {tuple(state.job.coords[j])}: {err}"
                continue
            if isinstance(tile, bytes):  # decoded by the caller (zeros if that fails)
                tiles[r] = 0
                jpeg_rows.append(r)
                jpeg.append(tile)
            else:
                tiles[r] = tile
            n_fast += int(fast)
        item = {
            "slide": k,
            "start": start,
            "tiles": buf,
            "bad": torch.tensor(bad, dtype=torch.int64),
            "n_fast": n_fast,
            "error": error,
        }
        if self.raw_jpeg:  # one buffer: a worker sends every tensor in its own shared memory
            item["jpeg_rows"] = torch.tensor(jpeg_rows, dtype=torch.int64)
            item["jpeg_sizes"] = torch.tensor([len(b) for b in jpeg], dtype=torch.int64)
            item["jpeg"] = torch.frombuffer(
                bytearray().join(jpeg) or bytearray(1), dtype=torch.uint8
            )
        return item

    def close(self) -> None:
        """Close the slide this process has open."""
        if self._state is not None and self._state[0] == os.getpid():
            self._state[2].close()
        self._state = None


def _resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; other strings are passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def normalisation(enc: Encoder, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of shape (3,) mapping uint8 pixels to the encoder's normalised input."""
    std = torch.tensor(enc.std, dtype=torch.float32, device=dev) * 255.0
    mean = torch.tensor(enc.mean, dtype=torch.float32, device=dev) * 255.0
    return 1.0 / std, -mean / std


def prepare_batch(
    tiles: torch.Tensor, size: int, scale: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """uint8 (B, S, S, 3) tiles -> normalised float (B, 3, size, size), channels_last.

    Normalising in NHWC order with in-place ops over flat rows is far cheaper on CPU than
    broadcasting over an NCHW view; the permuted result is channels_last without a copy.
    Tiles of another size are resized first with antialiased bilinear interpolation (PIL's
    filter) on the tiles' device: on the CPU directly on the uint8 channels_last tensor,
    torch's vectorised path (measured ~4x cheaper per tile than cv2 INTER_AREA and ~9x
    cheaper than the float resize;
    fixed-point weights: within ~1 grey level of the float filter), on a GPU in float.
    """
    if tiles.shape[1] != size or tiles.shape[2] != size:
        x = tiles.permute(0, 3, 1, 2)  # NCHW view of NHWC memory = channels_last
        if x.device.type == "cpu" and x.dtype == torch.uint8:
            x = nn.functional.interpolate(
                x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )
            return prepare_batch(x.permute(0, 2, 3, 1), size, scale, shift)
        x = nn.functional.interpolate(
            x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        x = x.mul_(scale.view(1, 3, 1, 1)).add_(shift.view(1, 3, 1, 1))
        return x.contiguous(memory_format=torch.channels_last)
    # Per-channel constants tiled over the whole (H, W, 3) row: the multiply-add then runs over
    # same-shape flat rows, which torch vectorises (~3x cheaper on CPU than broadcasting a
    # length-3 vector over the last axis; identical values).
    n, h, w, c = tiles.shape
    flat_scale = scale.to(tiles.device).repeat(h * w)
    flat_shift = shift.to(tiles.device).repeat(h * w)
    x = tiles.reshape(n, h * w * c).float().mul_(flat_scale).add_(flat_shift)
    return x.view(n, h, w, c).permute(0, 3, 1, 2)


def input_resize_label(resize_on_device: bool, dev: torch.device) -> str:
    """How patches were resized to the encoder input, as recorded in the feature files."""
    if not resize_on_device:
        return "cv2-area"  # in the loader
    return "torch-bilinear-antialias" + ("-uint8" if dev.type == "cpu" else "")


def _autocast_dtype(precision: str, dev: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16/fp16 on CUDA only ('auto' = bf16 where supported); else None."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if dev.type != "cuda":
        if precision in ("bf16", "fp16"):
            log.warning("precision %s applies on CUDA only; encoding in fp32 on %s", precision, dev)
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


class _Raised:
    """An exception carried from the prefetch thread to the consumer."""

    def __init__(self, err: BaseException) -> None:
        self.err = err


def _prefetched(items: Iterable[Any], depth: int, pin: bool) -> Iterator[Any]:
    """Iterate `items` in a background thread, `depth` ahead (readers release the GIL)."""
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if pin:
                    item["tiles"] = item["tiles"].pin_memory()
                if not put(item):
                    return
        except BaseException as err:  # noqa: BLE001 - re-raised in the consumer
            put(_Raised(err))
        else:
            put(done)

    thread = threading.Thread(target=produce, name="tile-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, _Raised):
                raise item.err
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


def _write_features(job: SlideJob, feats: np.ndarray, enc: Encoder, extra: dict[str, Any]) -> None:
    """Write one slide's feature h5 (features, coords, provenance) to a temp name, then rename."""
    attrs = job.attrs
    with atomic_path(job.out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("features", data=np.asarray(feats, np.float32).reshape(-1, enc.dim))
        dset = f.create_dataset("coords", data=job.coords.astype(np.int64).reshape(-1, 2))
        for key, value in attrs.items():
            dset.attrs[key] = value
        f.create_dataset("bad_tiles", data=np.asarray(extra.pop("bad_tiles", []), np.int64))
        f.attrs["encoder"] = enc.name
        f.attrs["weights"] = enc.weights_id
        f.attrs["feature_dim"] = int(enc.dim)
        f.attrs["target_magnification"] = float(attrs.get("target_magnification", np.nan))
        f.attrs["patch_size"] = int(attrs["patch_size"])
        f.attrs["n_tiles"] = int(len(job.coords))
        for key, value in extra.items():
            f.attrs[key] = value
        for key, value in _slide_stamp(job.slide).items():
            f.attrs[key] = value
    if job.keep_finished:
        _place(job.out, resume_path(job.out))


RESUME_DIR = ".resume"


def resume_path(out: str | os.PathLike[str]) -> Path:
    """Where a finished slide's features are kept until its whole batch has succeeded.

    Snakemake deletes every output of a failed or killed job; this hard link (a copy on
    filesystems without links) outlives that, so a rerun of the batch encodes only the slides
    that were not finished.
    """
    out = Path(out)
    return out.parent / RESUME_DIR / out.name


def _slide_stamp(slide: str) -> dict[str, int]:
    """Size and modification time of a slide file: a kept output is reused only if they match."""
    st = os.stat(slide)
    return {"slide_bytes": int(st.st_size), "slide_mtime_ns": int(st.st_mtime_ns)}


def _place(src: Path, dst: Path) -> None:
    """Hard-link (or copy) ``src`` to ``dst`` atomically, replacing ``dst``."""
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.tmp"
    for attempt in range(3):  # another batch may remove the empty directory meanwhile
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        try:
            try:
                os.link(src, tmp)
            except FileNotFoundError:
                raise
            except OSError:  # no hard links on this filesystem
                shutil.copy2(src, tmp)
            os.replace(tmp, dst)
            return
        except FileNotFoundError:
            if attempt == 2 or not src.exists():
                raise


def _kept_output_mismatch(job: SlideJob, enc: Encoder, provenance: dict[str, Any]) -> str | None:
    """Why the kept output of ``job`` cannot stand for a new encoding (None: it can)."""
    expected = {
        "encoder": enc.name,
        "weights": enc.weights_id,
        **provenance,
        **_slide_stamp(job.slide),
    }
    try:
        with h5py.File(resume_path(job.out), "r") as f:
            for key, value in expected.items():
                got = py_value(f.attrs.get(key))
                if got != value:
                    return f"{key} is {got!r}, now {value!r}"
            if f["features"].shape != (len(job.coords), enc.dim):
                return f"features {f['features'].shape}, now {(len(job.coords), enc.dim)}"
            if not np.array_equal(f["coords"][()], job.coords.reshape(-1, 2)):
                return "the tile coords differ"
    except (OSError, KeyError) as err:
        return f"unreadable ({err})"
    return None


def _reuse_kept_output(job: SlideJob, enc: Encoder, provenance: dict[str, Any]) -> bool:
    """Put a kept output of an earlier, failed run of this batch in place if it still holds."""
    kept = resume_path(job.out)
    if not kept.exists():
        return False
    why = _kept_output_mismatch(job, enc, provenance)
    if why is not None:
        log.warning("slide %s: not reusing %s (%s); encoding again", job.slide, kept, why)
        kept.unlink()
        return False
    _place(kept, job.out)
    log.info("slide %s: reused %s, finished by an earlier run of this batch", job.slide, kept)
    return True


def _load_job(
    slide: str | os.PathLike[str],
    coords_h5: str | os.PathLike[str],
    out: Any,
    keep_finished: bool = False,
) -> SlideJob:
    """Read a slide's coords and check its files exist (missing inputs are config errors)."""
    coords, attrs = read_coords_h5(coords_h5)
    if not Path(slide).is_file():
        raise FileNotFoundError(f"slide file not found: {slide}")
    return SlideJob(str(slide), coords, attrs, Path(out), keep_finished=keep_finished)


def extract_features(
    slides: Sequence[str | os.PathLike[str]],
    coords_h5: Sequence[str | os.PathLike[str]],
    out_h5: Sequence[str | os.PathLike[str]],
    *,
    encoder: str | Encoder = "resnet50_trunc",
    weights: str | None = None,
    reader: Reader = "openslide",
    batch_size: int = 64,
    num_workers: int = 0,
    device: str = "auto",
    precision: str = "auto",
    channels_last: bool = True,
    fast_tiles: FastMode = "aligned",
    max_bad_tile_fraction: float = 0.05,
    prefetch_batches: int = 4,
    resize_on_device: bool | None = None,
    resume: bool = True,
    decode_on_device: bool = False,
) -> list[int]:
    """Encode the tiles of several slides with one encoder and one loader; one h5 per slide.

    The loader runs through all slides' tile batches in order, so the next slide is read while
    the current one is encoded (DataLoader workers, or a background thread when
    `num_workers=0`). Tiles come from the raw JPEG tiles where `fast_tiles` allows
    (tileread.py), else from the reader's `read_region`. On CUDA, batches are pinned and
    copied asynchronously and the encoder runs under autocast (`precision`). A tile that
    cannot be read is replaced by zeros and listed in the output's `bad_tiles`; a slide with
    more than `max_bad_tile_fraction` bad tiles, a truncated or unreadable slide fails without
    an output, after the other slides are written, with a SlideError naming each failed slide.
    Each output is written to a temp name and renamed when complete. Returns tiles per slide.
    `resize_on_device` (default True) makes the loader stop at the patch size and resizes to
    the encoder input after it, on the device (antialiased bilinear; uint8 on the CPU); False
    resizes in the loader with cv2 INTER_AREA (the behaviour before this option).
    With `decode_on_device`, tiles that are exactly one stored JPEG tile leave the loader
    undecoded and are decoded in batches on the device (nvJPEG on CUDA, checked against
    libjpeg on the first tile; libjpeg-turbo through torchvision on a CPU).
    With `resume`, each finished output is also kept under :func:`resume_path` until the whole
    batch has succeeded, and a kept output whose slide file, coords, encoder, weights and
    provenance still match is put back instead of encoding the slide again.
    """
    if not len(slides) == len(coords_h5) == len(out_h5):
        raise ValueError(
            f"{len(slides)} slides, {len(coords_h5)} coords files, {len(out_h5)} outputs"
        )
    if not 0 <= max_bad_tile_fraction <= 1:
        raise ValueError(f"max_bad_tile_fraction must be in [0, 1], got {max_bad_tile_fraction}")
    jobs = [
        _load_job(s, c, o, keep_finished=resume)
        for s, c, o in zip(slides, coords_h5, out_h5, strict=True)
    ]
    if isinstance(encoder, Encoder):
        if weights is not None:
            raise ValueError("pass weights to create_encoder, not with an Encoder instance")
        enc = encoder
    else:
        enc = create_encoder(encoder, weights=weights)
    dev = _resolve_device(device)
    amp = _autocast_dtype(precision, dev)
    if resize_on_device is None:
        resize_on_device = True
    if decode_on_device and not resize_on_device:
        raise ValueError("decode_on_device needs resize_on_device (tiles resize after decoding)")
    enc.eval()
    enc.to(dev, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    provenance = {
        "reader": reader,
        "precision": str(amp).removeprefix("torch.") if amp else "fp32",
        # patch -> encoder input: antialiased bilinear (PIL's filter, within 1 grey level of
        # INTER_AREA) after the loader, or cv2 INTER_AREA in the loader
        "input_resize": input_resize_label(resize_on_device, dev),
    }
    if decode_on_device:  # the decoder may fall back to the CPU: set again once it has checked
        provenance["jpeg_decode"] = _DeviceJpeg(dev).label

    failures: dict[int, str] = {}
    todo: list[SlideJob] = []
    index: list[int] = []  # position in `jobs` of each job in `todo`
    for k, job in enumerate(jobs):
        if resume and _reuse_kept_output(job, enc, provenance):
            continue
        try:
            verify_slide_file(job.slide)
            with open_slide(job.slide, reader):
                pass
        except SlideError as err:
            failures[k] = str(err)
            continue
        if len(job.coords) == 0:
            log.warning("slide %s: 0 tiles; writing empty (0, %d) features", job.slide, enc.dim)
            _write_features(job, np.zeros((0, enc.dim), np.float32), enc, dict(provenance))
            continue
        todo.append(job)
        index.append(k)

    counts = [len(job.coords) for job in jobs]
    if todo:
        _encode(
            todo,
            index,
            enc,
            dev,
            amp,
            failures,
            provenance=provenance,
            reader=reader,
            batch_size=batch_size,
            num_workers=num_workers,
            channels_last=channels_last,
            fast_tiles=fast_tiles,
            max_bad_tile_fraction=max_bad_tile_fraction,
            prefetch_batches=prefetch_batches,
            resize_on_device=resize_on_device,
            decode_on_device=decode_on_device,
        )
    if failures:
        lines = [f"{jobs[k].slide}: {msg}" for k, msg in sorted(failures.items())]
        kept = (
            f"\nThe other slides' features are kept under {jobs[0].out.parent / RESUME_DIR}; "
            "a rerun of this batch reuses them and encodes only the failed slides."
            if resume and len(failures) < len(jobs)
            else ""
        )
        raise SlideError(
            f"{len(failures)} of {len(jobs)} slide(s) failed (no output written for them):\n"
            + "\n".join(lines)
            + kept
        )
    if resume:  # the batch is complete: drop its kept copies (and the directory once empty)
        for job in jobs:
            resume_path(job.out).unlink(missing_ok=True)
        for folder in {resume_path(job.out).parent for job in jobs}:
            with contextlib.suppress(OSError):  # not empty: other batches' kept outputs
                folder.rmdir()
    return counts


def jpeg_streams(item: dict[str, Any]) -> list[torch.Tensor]:
    """The undecoded JPEG files of a TileBatches item (raw_jpeg=True), as 1-D uint8 views."""
    sizes = item["jpeg_sizes"].tolist()
    return list(torch.split(item["jpeg"][: sum(sizes)], sizes)) if sizes else []


class _DeviceJpeg:
    """Decodes the loader's undecoded JPEG tiles on the encoder's device (nvJPEG on CUDA).

    On CUDA the first tile is also decoded on the CPU (libjpeg-turbo, which matches
    openslide): if the GPU's pixels differ by more than rounding, every later tile is decoded
    on the CPU instead and a warning says so, rather than trusting an unverified decoder.
    """

    MAX_MEAN_DIFF = 1.0  # grey levels; IDCT implementations differ by rounding only

    def __init__(self, dev: torch.device) -> None:
        self.dev = dev
        self.where = dev
        self.checked = dev.type != "cuda"

    @property
    def label(self) -> str:
        """How tiles were decoded, for the feature files' provenance."""
        return "nvjpeg" if self.where.type == "cuda" else "torchvision-libjpeg"

    def _check(self, stream: torch.Tensor) -> None:
        """Compare the device's decoding of one tile with the CPU's; fall back when they differ."""
        from torchvision.io import ImageReadMode, decode_jpeg

        self.checked = True
        try:
            got = decode_jpeg(stream, mode=ImageReadMode.RGB, device=self.where).cpu()
        except RuntimeError as err:
            log.warning("JPEG decoding on %s failed (%s); decoding on the CPU", self.where, err)
            self.where = torch.device("cpu")
            return
        ref = decode_jpeg(stream, mode=ImageReadMode.RGB)
        diff = (got.float() - ref.float()).abs().mean().item() if got.shape == ref.shape else 255
        if diff > self.MAX_MEAN_DIFF:
            log.warning(
                "JPEG decoding on %s differs from libjpeg by %.1f grey levels on average; "
                "decoding on the CPU",
                self.where,
                diff,
            )
            self.where = torch.device("cpu")
        else:
            log.info("JPEG tiles decoded on %s (mean difference to libjpeg %.2f)", self.where, diff)

    def _decode(self, stream: torch.Tensor) -> torch.Tensor | None:
        """One tile (3, H, W) on the decoding device, or None when it does not decode."""
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return decode_jpeg(stream, mode=ImageReadMode.RGB, device=self.where)
        except RuntimeError:
            return None

    def into(
        self, tiles: torch.Tensor, rows: torch.Tensor, streams: list[torch.Tensor]
    ) -> list[int]:
        """Decode ``streams`` into ``tiles[rows]`` (B, S, S, 3); rows that fail stay zero."""
        from torchvision.io import ImageReadMode, decode_jpeg

        if not streams:
            return []
        if not self.checked:
            self._check(streams[0])
        try:
            imgs: list[torch.Tensor | None] = list(
                decode_jpeg(streams, mode=ImageReadMode.RGB, device=self.where)
            )
        except RuntimeError:  # a corrupt tile fails the whole batch: one by one
            imgs = [self._decode(s) for s in streams]
        size = tiles.shape[1]
        good = [i is not None and i.shape == (3, size, size) for i in imgs]
        failed = [r for r, ok in zip(rows.tolist(), good, strict=True) if not ok]
        if any(good):
            decoded = torch.stack([i for i, ok in zip(imgs, good, strict=True) if ok])
            keep = rows[torch.tensor(good)].to(self.dev)
            tiles[keep] = decoded.to(self.dev).permute(0, 2, 3, 1)
        return failed


def _encode(
    todo: list[SlideJob],
    index: list[int],
    enc: Encoder,
    dev: torch.device,
    amp: torch.dtype | None,
    failures: dict[int, str],
    *,
    provenance: dict[str, Any],
    reader: Reader,
    batch_size: int,
    num_workers: int,
    channels_last: bool,
    fast_tiles: FastMode,
    max_bad_tile_fraction: float,
    prefetch_batches: int,
    resize_on_device: bool,
    decode_on_device: bool = False,
) -> None:
    """Run the loader over `todo`, encode, and write or fail each slide when it completes."""
    cuda = dev.type == "cuda"
    size = enc.input_size
    dataset = TileBatches(
        todo,
        batch_size=batch_size,
        reader=reader,
        input_size=None if resize_on_device else size,
        fast_tiles=fast_tiles,
        raw_jpeg=decode_on_device,
    )
    decoder = _DeviceJpeg(dev) if decode_on_device else None
    loader = DataLoader(
        dataset,
        batch_size=None,  # items are batches already
        shuffle=False,
        num_workers=num_workers,
        pin_memory=cuda,
        prefetch_factor=max(1, prefetch_batches) if num_workers > 0 else None,
        persistent_workers=False,
    )
    batches: Iterable[dict[str, Any]] = loader
    if num_workers == 0:
        batches = _prefetched(loader, prefetch_batches, pin=cuda)
    scale, shift = normalisation(enc, dev)
    autocast = torch.autocast("cuda", dtype=amp) if amp is not None else contextlib.nullcontext()
    outs: list[torch.Tensor] = []
    bad: list[torch.Tensor] = []
    n_fast, error, current = 0, "", 0
    try:
        with torch.inference_mode():
            for batch in batches:
                k = int(batch["slide"])
                if k != current or int(batch["start"]) != sum(len(o) for o in outs):
                    raise RuntimeError(f"tile batches out of order at slide {todo[k].slide}")
                tiles = batch["tiles"].to(dev, non_blocking=True)
                if decoder is not None and len(batch["jpeg_rows"]):
                    failed = decoder.into(tiles, batch["jpeg_rows"], jpeg_streams(batch))
                    provenance["jpeg_decode"] = decoder.label
                    if failed:
                        start = int(batch["start"])
                        idx = torch.tensor([start + r for r in failed], dtype=torch.int64)
                        batch["bad"] = torch.cat([batch["bad"], idx]).sort().values
                        batch["n_fast"] = int(batch["n_fast"]) - len(failed)
                        where = tuple(todo[k].coords[start + failed[0]])
                        batch["error"] = batch["error"] or (
                            f"tile {start + failed[0]} at {where}: JPEG data does not decode"
                        )
                x = prepare_batch(tiles, size, scale, shift)
                if not channels_last:
                    x = x.contiguous()
                with autocast:
                    outs.append(enc(x).float())
                bad.append(batch["bad"])
                n_fast += int(batch["n_fast"])
                error = error or str(batch["error"])
                job = todo[k]
                if sum(len(o) for o in outs) < len(job.coords):
                    continue
                feats = torch.cat(outs).cpu().numpy()  # one device sync per slide
                bad_idx = torch.cat(bad).numpy()
                _finish_slide(
                    job,
                    feats,
                    bad_idx,
                    n_fast,
                    error,
                    enc,
                    provenance,
                    max_bad_tile_fraction,
                    failures,
                    index[k],
                )
                outs, bad, n_fast, error, current = [], [], 0, "", k + 1
    finally:
        dataset.close()
    if current != len(todo):
        raise RuntimeError(f"loader stopped after {current} of {len(todo)} slides")


def _finish_slide(
    job: SlideJob,
    feats: np.ndarray,
    bad_idx: np.ndarray,
    n_fast: int,
    error: str,
    enc: Encoder,
    provenance: dict[str, Any],
    max_bad_tile_fraction: float,
    failures: dict[int, str],
    k: int,
) -> None:
    """Write a completed slide, or record its failure when too many tiles were unreadable."""
    n = len(job.coords)
    n_bad = len(bad_idx)
    if feats.shape != (n, enc.dim):
        raise RuntimeError(f"{job.slide}: encoded {feats.shape}, expected {(n, enc.dim)}")
    if n_bad / n > max_bad_tile_fraction:
        failures[k] = (
            f"{n_bad} of {n} tiles unreadable ({n_bad / n:.1%} > "
            f"features.max_bad_tile_fraction={max_bad_tile_fraction:g}); first: {error}"
        )
        log.error("slide %s: %s", job.slide, failures[k])
        return
    if n_bad:
        msg = (
            f"slide {job.slide}: {n_bad} of {n} tiles unreadable, encoded as zero images "
            f"(listed in bad_tiles); first: {error}"
        )
        log.warning("%s", msg)
        warnings.warn(msg, stacklevel=2)
    extra = {**provenance, "n_bad_tiles": n_bad, "n_fast_tiles": n_fast, "bad_tiles": bad_idx}
    _write_features(job, feats, enc, extra)
    log.info(
        "slide %s: %d tiles encoded (%d from raw JPEG tiles, %d bad)", job.slide, n, n_fast, n_bad
    )


def extract_slide_features(
    slide_path: str | os.PathLike[str],
    coords_h5: str | os.PathLike[str],
    out_h5: str | os.PathLike[str],
    **kwargs: Any,
) -> int:
    """Encode every tile of one slide into `out_h5` (features + coords); return N.

    A one-slide `extract_features`: same keywords (`encoder` may be a built Encoder, so that
    a batch of slides loads the network once), same atomic output.
    """
    return extract_features([slide_path], [coords_h5], [out_h5], **kwargs)[0]
