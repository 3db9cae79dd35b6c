"""Seconds per optimisation step and peak memory of each survival model for bags of 1k-100k patches.

Each (model, bag size) runs in a fresh subprocess so that its peak memory is its own: on CPU the
peak resident set size (ru_maxrss) and the RSS before the first step; on CUDA
torch.cuda.max_memory_allocated. A step is what training does per case: forward, NLL survival
loss + the model's auxiliary loss, backward and an Adam step, on the full (uncapped) bag.

    python benchmarks/bench_models.py                       # all models, CPU, 1k/10k/100k
    python benchmarks/bench_models.py --models ours mcat --device cuda

Results: benchmarks/results/models_<device>.json and .md (median over --reps steps after one
warm-up step); the Markdown also gives ours / mcat per bag size, both measured in the same run.
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SIZES = (1_000, 10_000, 100_000)
PATH_DIM = 1024  # ResNet50-trunc features, as in the paper
N_BINS = 4


def family_sizes(gene_families_csv: Path) -> list[int]:
    """Input sizes of the six families with RNA-seq + CNV per gene (as the TCGA run has them)."""
    import pandas as pd

    table = pd.read_csv(gene_families_csv)
    return [2 * int(table[c].notna().sum()) for c in table.columns]


def run_one(model_name: str, n: int, device: str, reps: int, omic_sizes: list[int]) -> dict:
    """Time `reps` training steps of one model on one bag in this process; return the figures."""
    import torch

    from mmsurv.models import create_model, model_modalities
    from mmsurv.training.losses import nll_surv_loss

    torch.manual_seed(0)
    dev = torch.device(device)
    mods = model_modalities(model_name)
    model = create_model(model_name, n_bins=N_BINS, path_dim=PATH_DIM, omic_sizes=omic_sizes)
    model = model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, weight_decay=1e-5)
    path = torch.randn(n, PATH_DIM, device=dev) if "path" in mods else None
    omics = [torch.randn(s, device=dev) for s in omic_sizes] if "omic" in mods else None
    label = torch.tensor([1], device=dev)
    event = torch.tensor([True], device=dev)
    takes_label = "label" in inspect.signature(model.forward).parameters
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def step() -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        out = model(path, omics, label=label) if takes_label else model(path, omics)
        loss = nll_surv_loss(out.hazards, label, event) + out.aux_loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t0

    step()  # warm-up
    times = [step() for _ in range(reps)]
    row: dict[str, Any] = {
        "model": model_name,
        "n_patches": n,
        "device": device,
        "s_per_step": statistics.median(times),
        "s_per_step_min": min(times),
        "reps": reps,
        "n_params": sum(p.numel() for p in model.parameters()),
    }
    if dev.type == "cuda":
        row["peak_mem_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
        row["gpu"] = torch.cuda.get_device_name(dev)
    else:
        row["peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        row["rss_before_mb"] = rss_before
        row["threads"] = torch.get_num_threads()
    return row


def _child(args: argparse.Namespace) -> None:
    """Subprocess entry: one model, one size; prints one JSON line."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.omic_sizes.split(",")]
    print(json.dumps(run_one(args.models[0], args.sizes[0], args.device, args.reps, sizes)))


def _markdown(rows: list[dict], meta: dict) -> str:
    """Table of s/step and peak memory per model × bag size, plus ours / mcat ratios."""
    sizes = sorted({r["n_patches"] for r in rows})
    models = list(dict.fromkeys(r["model"] for r in rows))
    by = {(r["model"], r["n_patches"]): r for r in rows}
    lines = [
        f"# Model step benchmark ({meta['device']})",
        "",
        f"{meta['date']} · {meta['host']} · torch {meta['torch']} · threads {meta['threads']} · "
        f"path_dim {PATH_DIM} · omic sizes {meta['omic_sizes']} · median of {meta['reps']} steps",
        "",
        "| model | " + " | ".join(f"{n:,} patches: s/step · peak MB" for n in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for m in models:
        cells = []
        for n in sizes:
            r = by.get((m, n))
            if r is None:
                cells.append("—")
            elif "error" in r:
                cells.append(r["error"])
            else:
                extra = (
                    f" (+{r['peak_mem_mb'] - r['rss_before_mb']:.0f})"
                    if "rss_before_mb" in r
                    else ""
                )
                cells.append(f"{r['s_per_step']:.4f} · {r['peak_mem_mb']:.0f}{extra}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    pairs = [
        (n, by[("ours", n)], by[("mcat", n)])
        for n in sizes
        if ("ours", n) in by and ("mcat", n) in by
    ]
    pairs = [(n, a, b) for n, a, b in pairs if "error" not in a and "error" not in b]
    if pairs:
        lines += ["", "ours / mcat (same run):", ""]
        for n, a, b in pairs:
            lines.append(
                f"- {n:,} patches: time ×{a['s_per_step'] / b['s_per_step']:.2f}, "
                f"peak memory ×{a['peak_mem_mb'] / b['peak_mem_mb']:.2f}"
            )
    if meta["device"] == "cpu":
        lines += [
            "",
            "CPU peak memory is the process's peak RSS (Python + torch + model + bag + "
            "activations); in brackets its growth over the RSS before the first step, i.e. "
            "what the training step itself needs.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run every (model, size) in a subprocess and write the JSON and Markdown results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    ap.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per (model, size)")
    ap.add_argument("--omic-sizes", default=None, help="comma-separated; default from resources")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args)
        return 0

    import torch

    from mmsurv.models import list_models

    root = Path(__file__).resolve().parent.parent
    omic = args.omic_sizes or ",".join(
        str(s) for s in family_sizes(root / "resources" / "gene_families.csv")
    )
    models = args.models or list_models()
    rows = []
    for m in models:
        for n in args.sizes:
            cmd = [sys.executable, __file__, "--child", "--models", m, "--sizes", str(n)]
            cmd += ["--device", args.device, "--reps", str(args.reps), "--omic-sizes", omic]
            cmd += ["--threads", str(args.threads)]
            try:
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=args.timeout, check=False
                )
            except subprocess.TimeoutExpired:
                rows.append({"model": m, "n_patches": n, "error": f"timeout {args.timeout:.0f}s"})
                print(f"{m:>14} {n:>7}: timeout", flush=True)
                continue
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["?"])[-1]
                err = "out of memory" if "out of memory" in proc.stderr.lower() else last[:80]
                rows.append({"model": m, "n_patches": n, "error": err})
                print(f"{m:>14} {n:>7}: failed: {err}", flush=True)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{m:>14} {n:>7}: {row['s_per_step']:.4f} s/step, peak {row['peak_mem_mb']:.0f} MB",
                flush=True,
            )
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": platform.node(),
        "device": args.device,
        "torch": torch.__version__,
        "threads": args.threads or torch.get_num_threads(),
        "reps": args.reps,
        "omic_sizes": omic,
        "path_dim": PATH_DIM,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"models_{args.device}"
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    stem.with_suffix(".md").write_text(_markdown(rows, meta))
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
