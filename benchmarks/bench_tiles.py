"""Tile loading and feature extraction throughput: a CLAM-style loader versus mmsurv's.

On the same synthetic slides, with the same DataLoader worker count, in the same run:

(a) CLAM-style: one DataLoader per slide whose `__getitem__` opens the coords h5 to read one
    coordinate, calls openslide `read_region`, converts to PIL RGB, resizes to the encoder input
    (bicubic) and applies ToTensor + Normalize (CLAM's Whole_Slide_Bag_FP);
(b) mmsurv: one loader over all slides (`mmsurv.features.loader.TileBatches`), batches of tiles per
    item, raw JPEG tiles where the patch grid follows the tile grid (`fast_tiles="aligned"`),
    uint8 batches normalised after loading (that step is timed too);
(b') the same with `fast_tiles="never"` (batching alone), and `fast_tiles="any"`.

Slide kinds: Aperio-style RGB JPEG at 20x (256 px reads on 256 px tiles) and at 40x (512 px
reads = 2x2 tiles, resized), 240 px tiles (patch grid not on the tile grid) and deflate (no
JPEG). Then end-to-end extraction (`extract_features`, files written) versus the encoder's
forward pass alone on the same device and batch size, and the projected hours for the paper's
BLCA cohort (29.8 M patches) from the measured rates.

    python benchmarks/bench_tiles.py                     # small CPU run (a few minutes)
    python benchmarks/bench_tiles.py --device cuda --workers 8 --encode-tiles 4096

Results: benchmarks/results/tiles.json and tiles.md (medians over --repeats alternating runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmsurv.demo import synth
from mmsurv.demo.cohort import render_tissue
from mmsurv.features.device import _DeviceJpeg, jpeg_streams, normalisation, prepare_batch
from mmsurv.features.encoders import IMAGENET_MEAN, IMAGENET_STD, create_encoder
from mmsurv.features.extract import extract_features
from mmsurv.features.loader import SlideJob, TileBatches
from mmsurv.tiling import wsi

RESULTS = Path(__file__).resolve().parent / "results"
BLCA_PATCHES = 29.8e6  # the paper's BLCA cohort
KINDS = {
    # name: (scan magnification, stored tile size, write_svs keywords)
    "jpeg20_aligned": (20, 256, {"jpeg_style": "aperio"}),
    "jpeg40_aligned": (40, 256, {"jpeg_style": "aperio"}),
    "jpeg20_tile240": (20, 240, {"jpeg_style": "aperio"}),
    "deflate20": (20, 256, {"compression": "deflate"}),
}


# ------------------------------------------------------------------------------ slides
def make_slides(
    root: Path, n_slides: int, width20: int, height20: int, passes: int
) -> dict[str, list]:
    """Write `n_slides` slides per kind and coords h5 with every grid tile `passes` times.

    Repeating the grid gives each timed run enough tiles that worker start-up is amortised as
    on real slides (~10^4 tiles each) without writing gigapixel files; the pass order is the
    same for every loader, so caches help each equally.
    """
    out: dict[str, list] = {}
    for kind, (mag, tile, kw) in KINDS.items():
        out[kind] = []
        for i in range(n_slides):
            rgb, _ = render_tissue(np.random.default_rng(100 + i), 0.5, width20, height20, 3)
            if mag == 40:
                rgb = cv2.resize(rgb, (2 * width20, 2 * height20), interpolation=cv2.INTER_LINEAR)
            slide = root / f"{kind}_{i}.svs"
            mpp = 0.25 if mag == 40 else 0.5
            synth.write_svs(
                slide, rgb, mpp=mpp, app_mag=mag, downsamples=(1, 4, 16), tile=tile, **kw
            )
            result = wsi.tile_slide(slide, snap_to_tiles=0)
            ps0 = result.attrs["patch_size_level0"]
            w, h = (int(v) for v in rgb.shape[1::-1])
            ys, xs = np.mgrid[0 : h - ps0 + 1 : ps0, 0 : w - ps0 + 1 : ps0]
            grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.int64)
            grid = np.concatenate([grid] * passes)
            attrs = {
                **result.attrs,
                "n_tiles": len(grid),
                "patch_level": result.attrs["read_level"],
            }
            coords = root / f"{kind}_{i}.h5"
            with h5py.File(coords, "w") as f:  # CLAM's layout: attrs on the coords dataset
                dset = f.create_dataset("coords", data=grid)
                for key, value in attrs.items():
                    dset.attrs[key] = value
            out[kind].append((slide, coords))
    return out


# ------------------------------------------------------------------------------ loaders
class ClamBag(Dataset):
    """CLAM's Whole_Slide_Bag_FP: h5 opened per item, read_region, its eval transforms.

    CLAM's `get_eval_transforms`: Resize(224) (PIL bilinear), ToTensor, Normalize.
    """

    def __init__(self, coords_h5: Path, slide_path: Path, size: int) -> None:
        import openslide
        from torchvision import transforms

        self.file_path = str(coords_h5)
        self.wsi = openslide.OpenSlide(str(slide_path))  # CLAM opens it in the main process
        with h5py.File(self.file_path, "r") as f:
            dset = f["coords"]
            self.patch_level = int(dset.attrs["patch_level"])
            self.patch_size = int(dset.attrs["read_size"])
            self.length = len(dset)
        self.roi_transforms = transforms.Compose(
            [
                transforms.Resize(size),
                transforms.ToTensor(),
                transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, idx: int) -> dict[str, Any]:
        with h5py.File(self.file_path, "r") as hdf5_file:
            coord = hdf5_file["coords"][idx]
        img = self.wsi.read_region(
            tuple(int(c) for c in coord), self.patch_level, (self.patch_size, self.patch_size)
        ).convert("RGB")
        return {"img": self.roi_transforms(img), "coord": coord}


def run_clam(pairs: list[tuple[Path, Path]], workers: int, batch: int, size: int) -> int:
    """Load every tile of every slide CLAM's way (one loader per slide); number of tiles."""
    n = 0
    for slide, coords in pairs:
        dataset = ClamBag(coords, slide, size)
        loader = DataLoader(dataset, batch_size=batch, num_workers=workers, pin_memory=False)
        for item in loader:
            n += len(item["img"])
        dataset.wsi.close()
    return n


def run_ours(
    pairs: list[tuple[Path, Path]],
    workers: int,
    batch: int,
    size: int | None,
    fast: str,
    loader_resize: bool = False,
    raw_jpeg: bool = False,
) -> tuple[int, int]:
    """Load every tile through TileBatches (one loader, all slides) and normalise; tiles, fast.

    `size=None` is the GPU configuration: the loader stops at the patch size (256 px) and the
    resize to the encoder input happens on the GPU, so it is not loader work. With a `size`, the
    CPU is the device: as extract_features does there, the loader stops at 256 px and
    prepare_batch resizes (uint8, antialiased) and normalises; `loader_resize` instead resizes
    in the loader with cv2 INTER_AREA (mmsurv's CPU path before that change).
    `raw_jpeg` (GPU configuration with features.decode_on_device): tiles that are one stored
    JPEG tile leave the loader undecoded; they are decoded here when a GPU is at hand (nvJPEG),
    otherwise not at all, so on a CPU-only machine this is the loader's share alone.
    """
    jobs = []
    for slide, coords in pairs:
        xy, attrs = wsi.read_coords_h5(coords)
        jobs.append(SlideJob(str(slide), xy, attrs, Path(os.devnull)))
    dataset = TileBatches(
        jobs,
        batch_size=batch,
        input_size=size if loader_resize else None,
        fast_tiles=fast,  # type: ignore[arg-type]
        raw_jpeg=raw_jpeg,
    )
    decoder = _DeviceJpeg(torch.device("cuda")) if raw_jpeg and torch.cuda.is_available() else None
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4 if workers else None,
    )
    std = torch.tensor(IMAGENET_STD) * 255
    scale, shift = 1 / std, -torch.tensor(IMAGENET_MEAN) * 255 / std
    n = n_fast = 0
    for item in loader:
        tiles = item["tiles"]
        if decoder is not None and len(item["jpeg_rows"]):
            tiles = tiles.cuda()
            decoder.into(tiles, item["jpeg_rows"], jpeg_streams(item))
            torch.cuda.synchronize()
        if size is not None:  # CPU cfg: the CPU is the device, so it also normalises
            tiles = prepare_batch(tiles, size, scale, shift)
        n += len(tiles)
        n_fast += int(item["n_fast"])
    dataset.close()
    return n, n_fast


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its reaped children (loader workers)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, *args) -> tuple[float, float, Any]:  # noqa: ANN001 - any callable
    """(wall seconds, CPU seconds incl. finished workers, result) of one call."""
    c0, t0 = _cpu_seconds(), time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, _cpu_seconds() - c0, result


def bench_loaders(slides: dict[str, list], args: argparse.Namespace) -> dict[str, Any]:
    """Tiles/s of the CLAM-style and mmsurv loaders per slide kind, alternating runs.

    The main process runs torch single-threaded here (both loaders): OpenMP threads that
    spin-wait after each small op would take the cores the loader workers need.
    """
    out: dict[str, Any] = {}
    size = 224
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for kind, pairs in slides.items():
        runners = {
            "clam": lambda p=pairs: (run_clam(p, args.workers, args.batch_size, size), 0),
            "ours": lambda p=pairs: run_ours(p, args.workers, args.batch_size, size, "aligned"),
            "ours_gpu_cfg": lambda p=pairs: run_ours(
                p, args.workers, args.batch_size, None, "aligned"
            ),
            "ours_cv2_loader": lambda p=pairs: run_ours(
                p, args.workers, args.batch_size, size, "aligned", loader_resize=True
            ),
            "ours_raw_jpeg": lambda p=pairs: run_ours(
                p, args.workers, args.batch_size, None, "aligned", raw_jpeg=True
            ),
            "ours_never": lambda p=pairs: run_ours(p, args.workers, args.batch_size, size, "never"),
            "ours_any": lambda p=pairs: run_ours(p, args.workers, args.batch_size, size, "any"),
        }
        rates: dict[str, list[float]] = {k: [] for k in runners}
        cpu_ms: dict[str, list[float]] = {k: [] for k in runners}
        fast: dict[str, int] = {}
        for fn in runners.values():  # warm-up: page cache, imports
            fn()
        for _ in range(args.repeats):
            for name, fn in runners.items():
                secs, cpu, (n, n_fast) = timed(fn)
                rates[name].append(n / secs)
                cpu_ms[name].append(1e3 * cpu / n)
                fast[name] = n_fast
        med = {k: statistics.median(v) for k, v in rates.items()}
        cpu = {k: statistics.median(v) for k, v in cpu_ms.items()}
        out[kind] = {
            "tiles": int(n),
            "tiles_per_s": med,
            "cpu_ms_per_tile": cpu,
            "runs": rates,
            "fast_tiles": fast,
            "ratio_ours_vs_clam": med["ours"] / med["clam"],
            "ratio_gpu_cfg_vs_clam": med["ours_gpu_cfg"] / med["clam"],
            "ratio_raw_jpeg_vs_clam": med["ours_raw_jpeg"] / med["clam"],
            "ratio_cv2_loader_vs_clam": med["ours_cv2_loader"] / med["clam"],
            "ratio_never_vs_clam": med["ours_never"] / med["clam"],
            "ratio_any_vs_clam": med["ours_any"] / med["clam"],
            "cpu_ratio_clam_vs_ours": cpu["clam"] / cpu["ours"],
        }
        print(
            f"{kind}: "
            + ", ".join(f"{k} {v:.0f}/s ({cpu[k]:.2f} CPU-ms/tile)" for k, v in med.items()),
            flush=True,
        )
    torch.set_num_threads(threads)
    return out


# ------------------------------------------------------------------------------ extraction
def bench_extraction(
    pairs: list[tuple[Path, Path]], root: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """End-to-end extraction tiles/s versus the encoder's forward pass alone (same batches)."""
    dev = torch.device(args.device)
    enc = create_encoder(args.encoder)
    slide, coords = pairs[0]
    xy, attrs = wsi.read_coords_h5(coords)
    xy = xy[: args.encode_tiles]
    sub = root / "extract_coords.h5"
    result = wsi.TilingResult(xy, {**attrs, "n_tiles": len(xy)}, None, None, (1, 1), 0)
    wsi.write_coords_h5(sub, result)
    kwargs = {
        "encoder": enc,
        "batch_size": args.batch_size,
        "num_workers": args.extract_workers,
        "device": args.device,
        "precision": args.precision,
    }
    extract_features([slide], [sub], [root / "warm.h5"], **kwargs)  # warm-up (also the weights)
    enc.to(dev, memory_format=torch.channels_last).eval()
    scale, shift = normalisation(enc, dev)
    rng = np.random.default_rng(0)
    batches = [
        torch.from_numpy(
            rng.integers(0, 256, (min(args.batch_size, len(xy) - s), 224, 224, 3), np.uint8)
        )
        for s in range(0, len(xy), args.batch_size)
    ]
    from mmsurv.features.device import _autocast_dtype

    amp = _autocast_dtype(args.precision, dev)

    def forward_only() -> int:
        import contextlib

        ctx = torch.autocast("cuda", dtype=amp) if amp is not None else contextlib.nullcontext()
        outs = []
        with torch.inference_mode(), ctx:
            for b in batches:
                x = prepare_batch(b.to(dev, non_blocking=True), 224, scale, shift)
                outs.append(enc(x).float())
        torch.cat(outs).cpu()
        return len(xy)

    def end_to_end() -> int:
        return extract_features([slide], [sub], [root / "e2e.h5"], **kwargs)[0]

    rates: dict[str, list[float]] = {"end_to_end": [], "forward_only": []}
    for _ in range(args.encode_repeats):
        for name, fn in (("end_to_end", end_to_end), ("forward_only", forward_only)):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            secs, _, n = timed(fn)
            rates[name].append(n / secs)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"extraction: {med}", flush=True)
    return {
        "encoder": args.encoder,
        "tiles": len(xy),
        "batch_size": args.batch_size,
        "workers": args.extract_workers,
        "precision": str(amp).removeprefix("torch.") if amp else "fp32",
        "tiles_per_s": med,
        "runs": rates,
        "ratio_end_to_end_vs_forward": med["end_to_end"] / med["forward_only"],
    }


def device_name(dev: str) -> str:
    """A readable name of the device the numbers come from."""
    if dev.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(dev))
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible"


def write_markdown(path: Path, res: dict[str, Any]) -> None:
    """The results as Markdown tables."""
    raw_note = (
        "the loader hands over tiles that are one stored JPEG tile undecoded and the GPU "
        "decodes them in batches (nvJPEG), timed here."
        if torch.cuda.is_available()
        else "the loader hands over tiles that are one stored JPEG tile undecoded; no GPU was "
        "at hand, so nothing decoded them: this column is the loader's share alone (the CPU "
        "cost left when a GPU decodes)."
    )
    lines = [
        "# Tile loading and extraction throughput",
        "",
        f"Device: {res['device']}; torch threads {res['torch_threads']} (1 in the main process "
        f"while loaders are timed); DataLoader workers "
        f"{res['workers']} for both loaders; batch {res['batch_size']}; "
        f"{res['slides_per_kind']} synthetic slide(s) per kind, every grid tile read "
        f"{res['passes']} times per run; "
        f"medians of {res['repeats']} alternating runs after a warm-up. Command: "
        f"`{res['command']}`",
        "",
        "## Loader tiles/s",
        "",
        "(a) and (b) deliver normalised 224 px float tensors: CLAM resizes in the loader "
        "(torchvision Resize = PIL bilinear); mmsurv's loader stops at 256 px and the main "
        "process resizes the uint8 batch (torch antialiased bilinear, as extract_features does "
        "on a CPU) and normalises; `cv2 in loader` is mmsurv's previous CPU path (cv2 "
        "INTER_AREA in the workers). (b, GPU cfg) is mmsurv's loader as it runs beside a GPU: "
        "uint8 256 px patches, resize and normalisation being done on the GPU. "
        f"(b, undecoded JPEG) adds features.decode_on_device: {raw_note}",
        "",
        "| slide kind | tiles | CLAM-style (a) | mmsurv (b) | (b)/(a) | (b, GPU cfg)/(a) | "
        "(b, undecoded JPEG)/(a) | cv2 in loader | batching only (`never`) | `any` | "
        "raw-tile reads (b) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in res["loaders"].items():
        t = r["tiles_per_s"]
        lines.append(
            f"| {kind} | {r['tiles']} | {t['clam']:.0f} | {t['ours']:.0f} | "
            f"**{r['ratio_ours_vs_clam']:.2f}x** | {t['ours_gpu_cfg']:.0f} "
            f"(**{r['ratio_gpu_cfg_vs_clam']:.2f}x**) | {t['ours_raw_jpeg']:.0f} "
            f"({r['ratio_raw_jpeg_vs_clam']:.2f}x) | {t['ours_cv2_loader']:.0f} "
            f"({r['ratio_cv2_loader_vs_clam']:.2f}x) | {t['ours_never']:.0f} "
            f"({r['ratio_never_vs_clam']:.2f}x) | {t['ours_any']:.0f} "
            f"({r['ratio_any_vs_clam']:.2f}x) | {r['fast_tiles']['ours']}/{r['tiles']} |"
        )
    lines += [
        "",
        "CPU milliseconds per tile (user + system, main process and loader workers; less "
        "sensitive than wall time to other load on the machine):",
        "",
        "| slide kind | CLAM-style (a) | mmsurv (b) | (a)/(b) | (b, GPU cfg) | "
        "(b, undecoded JPEG) | cv2 in loader | `never` | `any` |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in res["loaders"].items():
        c = r["cpu_ms_per_tile"]
        lines.append(
            f"| {kind} | {c['clam']:.2f} | {c['ours']:.2f} | **{r['cpu_ratio_clam_vs_ours']:.2f}x**"
            f" | {c['ours_gpu_cfg']:.2f} | {c['ours_raw_jpeg']:.2f} | {c['ours_cv2_loader']:.2f}"
            f" | {c['ours_never']:.2f}"
            f" | {c['ours_any']:.2f} |"
        )
    e = res["extraction"]
    p = res["projection"]
    lines += [
        "",
        "## Extraction",
        "",
        f"{e['encoder']}, {e['tiles']} tiles, batch {e['batch_size']}, {e['precision']}, "
        f"loader workers {e['workers']} (0 = background reader thread)",
        "",
        "| end-to-end tiles/s (files written) | forward-only tiles/s | end-to-end / forward |",
        "|---|---|---|",
        f"| {e['tiles_per_s']['end_to_end']:.2f} | {e['tiles_per_s']['forward_only']:.2f} | "
        f"**{e['ratio_end_to_end_vs_forward']:.2f}** |",
        "",
        "## Projection for BLCA (29.8 M patches) on this device",
        "",
        f"- extraction at the measured end-to-end rate: **{p['extraction_hours']:,.0f} h** "
        f"({p['device']})",
        f"- loading alone with {res['workers']} worker(s), 20x aligned JPEG slides: "
        f"mmsurv {p['loader_hours_ours']:,.1f} h vs CLAM-style {p['loader_hours_clam']:,.1f} h; "
        f"40x: {p['loader_hours_ours_40x']:,.1f} h vs {p['loader_hours_clam_40x']:,.1f} h; "
        f"mmsurv in GPU configuration: {p['loader_hours_ours_gpu_cfg']:,.1f} h (20x), "
        f"{p['loader_hours_ours_gpu_cfg_40x']:,.1f} h (40x)",
        "",
        p["note"],
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slides", type=int, default=2, help="slides per kind")
    ap.add_argument("--width", type=int, default=3072, help="20x field width (px)")
    ap.add_argument("--height", type=int, default=2048, help="20x field height (px)")
    ap.add_argument("--passes", type=int, default=3, help="times each grid tile is read per run")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers, both loaders")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--encoder", default="resnet50_trunc")
    ap.add_argument("--encode-tiles", type=int, default=64)
    ap.add_argument("--encode-repeats", type=int, default=2)
    ap.add_argument("--extract-workers", type=int, default=0)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_tiles_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        slides = make_slides(root, args.slides, args.width, args.height, args.passes)
        print(f"slides written in {time.perf_counter() - t0:.1f} s under {root}", flush=True)
        loaders = bench_loaders(slides, args)
        extraction = bench_extraction(slides["jpeg20_aligned"], root, args)
    dev = device_name(args.device)
    e2e = extraction["tiles_per_s"]["end_to_end"]
    l20, l40 = loaders["jpeg20_aligned"]["tiles_per_s"], loaders["jpeg40_aligned"]["tiles_per_s"]
    res = {
        "command": "python benchmarks/bench_tiles.py " + " ".join(argv or sys.argv[1:]),
        "device": dev,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "workers": args.workers,
        "batch_size": args.batch_size,
        "slides_per_kind": args.slides,
        "field_20x": [args.width, args.height],
        "passes": args.passes,
        "repeats": args.repeats,
        "loaders": loaders,
        "extraction": extraction,
        "projection": {
            "patches": BLCA_PATCHES,
            "device": dev,
            "extraction_hours": BLCA_PATCHES / e2e / 3600,
            "loader_hours_ours": BLCA_PATCHES / l20["ours"] / 3600,
            "loader_hours_clam": BLCA_PATCHES / l20["clam"] / 3600,
            "loader_hours_ours_40x": BLCA_PATCHES / l40["ours"] / 3600,
            "loader_hours_ours_gpu_cfg": BLCA_PATCHES / l20["ours_gpu_cfg"] / 3600,
            "loader_hours_ours_gpu_cfg_40x": BLCA_PATCHES / l40["ours_gpu_cfg"] / 3600,
            "loader_hours_clam_40x": BLCA_PATCHES / l40["clam"] / 3600,
            "note": (
                "Hours are measured rates extrapolated, on the device named above (GPU-hours "
                "only when it is a GPU). Loader hours are the time to read and prepare the "
                "tiles with the stated workers; on a GPU node the loader runs beside the GPU, "
                "so a run takes the larger of loader and encoder time."
            ),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tiles.json").write_text(json.dumps(res, indent=2) + "\n")
    write_markdown(args.out / "tiles.md", res)
    print(f"wrote {args.out / 'tiles.json'} and tiles.md", flush=True)
    return res


if __name__ == "__main__":
    main()
