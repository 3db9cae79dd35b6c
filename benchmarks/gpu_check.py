"""Everything to measure when a GPU is at hand, in one run that fits in 8 minutes.

1. nvJPEG self-check: Aperio-layout JPEG tiles read raw by the extraction loader, decoded on the
   device (`features.device._DeviceJpeg`, nvJPEG on CUDA) and compared pixel by pixel with
   openslide's `read_region` of the same patches (libjpeg-turbo), the reference every CPU run uses.
2. `bench_tiles.py`: the CLAM-style tile loader against mmsurv's, and extraction end to end
   (files written) against the encoder's forward pass alone (target >= 0.9x), with the projected
   hours for the paper's BLCA cohort (29.8 M patches) at the measured rate.
3. `bench_models.py`: seconds per training step and peak memory of every model at 10k and 100k
   patches.

Each part runs as its own subprocess with a time limit, so one that hangs or runs out of memory
is reported and the others still run. Results: `<out>/gpu_check.json` and `gpu_check.md`, next to
the parts' own files (`nvjpeg.json`, `tiles.*`, `models_<device>.*`).

    bash benchmarks/gpu_check.sh                      # on a GPU node: cuda, full sizes
    bash benchmarks/gpu_check.sh --device cpu --tiny  # anywhere: the CI-sized smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "gpu_check"

# (bench_tiles args, bench_models sizes, reps, per-part time limit in s) for each mode; the full
# mode's limits add up to under 8 minutes with the nvJPEG check.
MODES: dict[str, dict[str, Any]] = {
    "full": {
        "tiles": ["--slides", "2", "--passes", "3", "--workers", "8", "--batch-size", "128"]
        + ["--encode-tiles", "4096", "--encode-repeats", "2", "--repeats", "2"],
        "model_sizes": ["10000", "100000"],
        "model_reps": "3",
        "models": [],  # every registered model
        "limits": {"nvjpeg": 45, "tiles": 210, "models": 225},
    },
    "tiny": {
        "tiles": ["--slides", "1", "--width", "768", "--height", "512", "--passes", "1"]
        + ["--workers", "0", "--batch-size", "8", "--encode-tiles", "8"]
        + ["--encode-repeats", "1", "--repeats", "1"],
        "model_sizes": ["200"],
        "models": ["snn", "attn_mil", "ours"],  # one per input kind: a smoke test, not a table
        "model_reps": "1",
        "limits": {"nvjpeg": 120, "tiles": 600, "models": 600},
    },
}


def nvjpeg_check(device: str, n_tiles: int = 64) -> dict[str, Any]:
    """Decode Aperio JPEG tiles on `device` as extraction does; compare with openslide's pixels."""
    import numpy as np
    import openslide
    import torch

    from mmsurv.demo import synth
    from mmsurv.demo.cohort import render_tissue
    from mmsurv.features.device import _DeviceJpeg, jpeg_streams
    from mmsurv.features.loader import SlideJob, TileBatches
    from mmsurv.tiling import wsi

    dev = torch.device(device)
    with tempfile.TemporaryDirectory(prefix="nvjpeg_") as tmp:
        slide = Path(tmp) / "aperio.svs"
        rgb, _ = render_tissue(np.random.default_rng(7), 0.5, 2048, 2048, 3)
        synth.write_svs(slide, rgb, mpp=0.5, app_mag=20, downsamples=(1, 4), tile=256)
        # the tiling step's attrs, with a grid on the stored 256 px tiles (as bench_tiles.py)
        tiled = wsi.tile_slide(slide, snap_to_tiles=0).attrs
        xy = np.array([(x, y) for y in range(0, 2048, 256) for x in range(0, 2048, 256)])[:n_tiles]
        attrs = {**tiled, "n_tiles": len(xy), "patch_level": tiled["read_level"]}
        job = SlideJob(str(slide), xy.astype(np.int64), attrs, Path(os.devnull))
        data = TileBatches(
            [job], batch_size=len(xy), input_size=None, fast_tiles="aligned", raw_jpeg=True
        )
        decoder = _DeviceJpeg(dev)
        got = []
        for item in data:  # one item: every tile of the slide
            tiles = item["tiles"].to(dev)
            failed = decoder.into(tiles, item["jpeg_rows"], jpeg_streams(item))
            n_raw = len(item["jpeg_rows"])
            got.append(tiles.cpu().numpy())
        data.close()
        got_arr = np.concatenate(got)
        with openslide.OpenSlide(str(slide)) as osr:
            ref = np.stack(
                [
                    np.asarray(osr.read_region((int(x), int(y)), 0, (256, 256)))[..., :3]
                    for x, y in xy
                ]
            )
    diff = np.abs(got_arr.astype(np.int16) - ref.astype(np.int16))
    return {
        "device": str(dev),
        "decoder": decoder.label,  # 'nvjpeg' only if the device passed _DeviceJpeg's own check
        "tiles": len(xy),
        "tiles_decoded_raw": int(n_raw),
        "tiles_failed": len(failed),
        "mean_abs_diff_vs_openslide": float(diff.mean()),
        "max_abs_diff_vs_openslide": int(diff.max()),
        "ok": bool(n_raw == len(xy) and not failed and diff.mean() <= _DeviceJpeg.MAX_MEAN_DIFF),
    }


def _run_part(name: str, cmd: list[str], limit: float, log_dir: Path) -> dict[str, Any]:
    """Run one part as a subprocess under a time limit; its output goes to <log_dir>/<name>.log."""
    t0 = time.perf_counter()
    log = log_dir / f"{name}.log"
    with log.open("w") as fh:
        try:
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=limit).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    status = "ok" if rc == 0 else f"failed ({rc}); see {log.name}"
    return {"command": " ".join(cmd[1:]), "status": status, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    """Run the three parts and write gpu_check.json / .md; exit 1 if any part failed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="CI-sized: small slides and bags")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--nvjpeg-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.nvjpeg_only:  # the child process of part 1
        res = nvjpeg_check(args.device)
        (args.out / "nvjpeg.json").write_text(json.dumps(res, indent=2) + "\n")
        return 0 if res["ok"] else 1
    mode = MODES["tiny" if args.tiny else "full"]
    py, out, dev = sys.executable, str(args.out), args.device
    parts = {
        "nvjpeg": [py, __file__, "--nvjpeg-only", "--device", dev, "--out", out],
        "tiles": [py, str(HERE / "bench_tiles.py"), "--device", dev, "--out", out, *mode["tiles"]],
        "models": [py, str(HERE / "bench_models.py"), "--device", dev, "--out", out]
        + ["--sizes", *mode["model_sizes"], "--reps", mode["model_reps"]]
        + (["--models", *mode["models"]] if mode["models"] else [])
        + ["--timeout", str(mode["limits"]["models"] // 6)],  # per model and size
    }
    t0 = time.perf_counter()
    runs = {n: _run_part(n, cmd, mode["limits"][n], args.out) for n, cmd in parts.items()}
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": platform.node(),
        "mode": "tiny" if args.tiny else "full",
        "device": dev,
        "seconds": time.perf_counter() - t0,
        "parts": runs,
        **_collect(args.out, dev),
    }
    (args.out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "gpu_check.md").write_text(_markdown(summary))
    print(f"wrote {args.out / 'gpu_check.md'}")
    return 0 if all(r["status"] == "ok" for r in runs.values()) else 1


def _load(path: Path) -> dict[str, Any] | None:
    """A part's JSON, or None when it wrote none."""
    return json.loads(path.read_text()) if path.is_file() else None


def _collect(out: Path, device: str) -> dict[str, Any]:
    """The headline numbers of each part's own result file."""
    tiles, models = _load(out / "tiles.json"), _load(out / f"models_{device}.json")
    return {
        "nvjpeg": _load(out / "nvjpeg.json"),
        "loaders_jpeg20": tiles and tiles["loaders"]["jpeg20_aligned"]["tiles_per_s"],
        "extraction": tiles and tiles["extraction"],
        "projection": tiles and tiles["projection"],
        "models": models and models["rows"],
    }


def _markdown(s: dict[str, Any]) -> str:
    """The summary as Markdown: parts, nvJPEG, loaders, extraction ratio, BLCA hours, models."""
    lines = [
        "# GPU check",
        "",
        f"{s['date']} · {s['host']} · device `{s['device']}` · mode {s['mode']} · "
        f"{s['seconds']:.0f} s in all",
        "",
        "| part | status | s | command |",
        "|---|---|---:|---|",
    ]
    lines += [
        f"| {n} | {r['status']} | {r['seconds']:.0f} | `{r['command']}` |"
        for n, r in s["parts"].items()
    ]
    nv = s["nvjpeg"]
    if nv:
        lines += [
            "",
            f"**JPEG decoding on the device** ({nv['decoder']}): {nv['tiles_decoded_raw']} of "
            f"{nv['tiles']} Aperio tiles decoded raw, {nv['tiles_failed']} failed; mean |diff| "
            f"to openslide {nv['mean_abs_diff_vs_openslide']:.3f}, max "
            f"{nv['max_abs_diff_vs_openslide']} grey levels: {'ok' if nv['ok'] else 'NOT OK'}.",
        ]
    if s["loaders_jpeg20"]:
        rates = ", ".join(f"{k} {v:.0f}" for k, v in s["loaders_jpeg20"].items())
        lines += ["", f"**Tile loaders** (20x Aperio JPEG, tiles/s): {rates}."]
    if s["extraction"]:
        e = s["extraction"]
        ratio = e["ratio_end_to_end_vs_forward"]
        lines += [
            "",
            f"**Extraction**: end to end {e['tiles_per_s']['end_to_end']:.1f} tiles/s, forward "
            f"only {e['tiles_per_s']['forward_only']:.1f}: ratio {ratio:.2f} (target >= 0.9: "
            f"{'met' if ratio >= 0.9 else 'not met'}).",
        ]
    if s["projection"]:
        p = s["projection"]
        lines += [
            "",
            f"**BLCA projection** ({p['patches'] / 1e6:.1f} M patches) on {p['device']}: "
            f"{p['extraction_hours']:,.1f} h of extraction at the measured rate.",
        ]
    if s["models"]:
        lines += ["", "| model | patches | s/step | peak MB |", "|---|---:|---:|---:|"]
        for r in s["models"]:
            if "error" in r:
                lines.append(f"| {r['model']} | {r['n_patches']} | {r['error']} | |")
            else:
                lines.append(
                    f"| {r['model']} | {r['n_patches']} | {r['s_per_step']:.4f} | "
                    f"{r['peak_mem_mb']:.0f} |"
                )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
