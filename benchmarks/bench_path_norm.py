"""Raw vs z-scored patch features (training.path_norm) on the demo's planted risk regions.

Needs a finished demo run (its bags, features and `demo_data/{cohort}/regions/`). Trains each
pathology model with the demo's training config, once with `path_norm: none` and once with
`zscore`, on every fold x seed (`mmsurv.training.train_fold`, no Snakemake), and reports per
cohort x model x setting: the held-out c-index (fold mean +- std) and, paired over the same
folds and seeds, the difference zscore - none with a Wilcoxon signed-rank p. For the models
with per-patch scores it also scores every held-out case from its fold's checkpoint (as rule
heatmaps does) and reports the mean score x N (1 = the case's average patch) of patches inside
the planted regions (>= half their area) and outside them (none of it).

    snakemake --cores 2                                   # the demo (results/)
    python benchmarks/bench_path_norm.py --results results --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from mmsurv.demo.regions import patch_region_fraction  # noqa: E402
from mmsurv.heatmaps.scores import (  # noqa: E402
    load_fold_model,
    read_case_bag,
    read_slide_coords,
    score_case,
)
from mmsurv.model_catalog import HEATMAP_MODELS  # noqa: E402
from mmsurv.training import model_params, train_fold  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
NORMS = ("none", "zscore")


_FRACTIONS: dict[tuple[Path, str, str], np.ndarray] = {}


def region_fraction(
    results: Path, cohort: str, slide: str, coords: np.ndarray, patch_size_level0: int
) -> np.ndarray:
    """Each patch's share inside the slide's planted regions (rasterised once per slide)."""
    key = (results, cohort, slide)
    if key not in _FRACTIONS:
        region_file = results / "demo_data" / cohort / "regions" / f"{slide}.geojson"
        _FRACTIONS[key] = patch_region_fraction(region_file, coords, patch_size_level0)
    return _FRACTIONS[key]


def region_scores(
    results: Path, cohort: str, model: str, fold_dir: Path, seed: int
) -> tuple[list[float], list[float]]:
    """Score x N of every held-out patch inside / outside the planted regions, one fold."""
    fold = load_fold_model(fold_dir / "checkpoint.pt", model, "any")
    pred = pd.read_parquet(fold_dir / "predictions.parquet")
    inside: list[float] = []
    outside: list[float] = []
    for case in pred["case_id"].astype(str):
        bag = read_case_bag(results / cohort / "bags.h5", case)
        panels, _ = score_case(fold, bag, None, seed)
        score = next(iter(panels.values())) * len(bag.features)
        for i, slide in enumerate(bag.slide_ids):
            rows = bag.slide_index == i
            features_h5 = results / cohort / "features" / f"{slide}.h5"
            sc = read_slide_coords(features_h5, slide, case, int(rows.sum()))
            frac = region_fraction(results, cohort, slide, sc.coords, sc.patch_size_level0)
            inside += score[rows][frac >= 0.5].tolist()
            outside += score[rows][frac == 0].tolist()
    return inside, outside


def run_one(
    results: Path, cohort: str, model: str, norm: str, seed: int, fold: int, training: dict
) -> dict[str, Any]:
    """Train one fold with `path_norm: norm`; its c-index and region scores."""
    params = model_params(training, model)
    params.update(path_norm=norm, num_threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = train_fold(
            cohort=cohort, model_name=model, fold=fold,
            bags_h5=str(results / cohort / "bags.h5"),
            omics_parquet=str(results / cohort / "omics.parquet"),
            families_json=str(results / cohort / "families.json"),
            clinical_tsv=str(results / "demo_data" / cohort / "clinical.tsv"),
            splits_tsv=str(results / cohort / "splits.tsv"),
            out_dir=tmp, params=params, seed=seed, device="cpu",
        )  # fmt: skip
        row = {
            "cohort": cohort, "model": model, "path_norm": norm, "seed": seed, "fold": fold,
            "cindex": float(summary["test_cindex"]), "seconds": time.perf_counter() - t0,
        }  # fmt: skip
        if model in HEATMAP_MODELS:
            inside, outside = region_scores(results, cohort, model, Path(tmp), seed)
            row |= {"inside_sum": float(np.sum(inside)), "inside_n": len(inside),
                    "outside_sum": float(np.sum(outside)), "outside_n": len(outside)}  # fmt: skip
    return row


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cohort x model: c-index per setting, paired difference, region scores per setting."""
    from scipy.stats import wilcoxon

    rows = []
    for (cohort, model), g in runs.groupby(["cohort", "model"], sort=False):
        wide = g.pivot_table(index=["seed", "fold"], columns="path_norm", values="cindex")
        diff = (wide["zscore"] - wide["none"]).dropna()
        row: dict[str, Any] = {"cohort": cohort, "model": model, "n_pairs": len(diff)}
        for norm in NORMS:
            c = g.loc[g["path_norm"] == norm, "cindex"]
            row[f"c_{norm}"], row[f"c_{norm}_std"] = c.mean(), c.std(ddof=1)
            if "inside_n" in g and g["inside_n"].notna().any():
                s = g[g["path_norm"] == norm]
                row[f"in_{norm}"] = s["inside_sum"].sum() / s["inside_n"].sum()
                row[f"out_{norm}"] = s["outside_sum"].sum() / s["outside_n"].sum()
        row["diff_mean"] = diff.mean()
        row["wilcoxon_p"] = float(wilcoxon(diff).pvalue) if (diff != 0).any() else 1.0
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame, meta: dict[str, Any]) -> str:
    """The results table in words and numbers."""
    # results written before the config was recorded ran the demo config of then
    tr = meta.get("training", {"epochs": 5, "lr": 2e-4, "grad_accum": 2})
    lines = [
        "# Patch-feature standardisation (training.path_norm) on the demo's planted regions",
        "",
        f"`{meta['command']}` — {meta['date']}, {meta['machine']}; {meta['n_runs']} training "
        f"jobs, {meta['seconds']:.0f} s. Demo training config ({tr['epochs']} epochs, lr "
        f"{tr['lr']:g}, {tr['grad_accum']}-step accumulation), random-init ResNet-50 features, "
        "seeds "
        f"{meta['seeds']}, 5 folds. c = held-out c-index, fold mean ± std over folds × seeds; "
        "Δ = zscore − none paired on the same fold and seed (Wilcoxon signed-rank p). "
        "in / out = mean per-patch score × N (1 = the case's average patch) of held-out "
        "patches inside / outside the planted regions.",
        "",
        "| cohort | model | c none | c zscore | Δ | p | in / out none | in / out zscore |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.itertuples():
        region = ["–", "–"]
        if hasattr(r, "in_none") and pd.notna(getattr(r, "in_none", np.nan)):
            region = [f"{getattr(r, f'in_{n}'):.2f} / {getattr(r, f'out_{n}'):.2f}" for n in NORMS]
        lines.append(
            f"| {r.cohort} | {r.model} | {r.c_none:.3f} ± {r.c_none_std:.3f} | "
            f"{r.c_zscore:.3f} ± {r.c_zscore_std:.3f} | {r.diff_mean:+.3f} | "
            f"{r.wilcoxon_p:.2g} | {region[0]} | {region[1]} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the grid, write results/path_norm.json and .md (or --out)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=REPO / "results")
    ap.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    ap.add_argument("--cohorts", nargs="+", default=["DEMO-BLCA", "DEMO-LUAD", "DEMO-UCEC"])
    ap.add_argument("--models", nargs="+", default=["attn_mil", "clam_sb", "transmil", "ours"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    training = yaml.safe_load(args.config.read_text())["training"]
    t0, runs = time.perf_counter(), []
    grid = [
        (cohort, model, norm, seed, fold)
        for cohort in args.cohorts
        for model in args.models
        for seed in args.seeds
        for fold in range(args.folds)
        for norm in NORMS
    ]
    for cohort, model, norm, seed, fold in grid:
        runs.append(run_one(args.results, cohort, model, norm, seed, fold, training))
        print(json.dumps(runs[-1]), flush=True)
    table = pd.DataFrame(runs)
    summary = summarise(table)
    meta = {
        "command": "python benchmarks/bench_path_norm.py " + " ".join(argv or sys.argv[1:]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {platform.python_version()}, CPU",
        "seeds": args.seeds,
        "n_runs": len(runs),
        "seconds": time.perf_counter() - t0,
        "training": {k: training[k] for k in ("epochs", "lr", "grad_accum")},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "summary": summary.to_dict("records"), "runs": runs}
    (args.out / "path_norm.json").write_text(json.dumps(payload, indent=1, default=float))
    (args.out / "path_norm.md").write_text(markdown(summary, meta))
    print(markdown(summary, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
