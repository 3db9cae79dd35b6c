"""Paired held-out c-index of finished demo runs: does a cheaper setting still learn as well?

Each run is a finished workflow output directory (`results/` of a demo run). For every deep
model, the c-index of each cohort x fold's held-out cases (the evaluation stage's fold_cindex) is
paired with the base run's on the same cases; the table gives both means, the mean paired
difference with a bootstrap 95 % CI over the (cohort, fold) units and a Wilcoxon signed-rank p.
A control run (the base setting with another training seed) shows how far the same comparison
moves from training randomness alone.

    python benchmarks/compare_demo_runs.py --base base=RUN_A/results:1 \
        --alt "3 epochs=RUN_B/results:1" --alt "seed 2=RUN_C/results:2" --stem demo_epochs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from _common import run_meta, write_json_md
from scipy.stats import wilcoxon

from mmsurv.evaluate.cindex_tables import fold_cindex

DEEP_MODELS = (
    "snn snn_trans attn_mil clam_sb transmil porpoise hfbsurv mcat dualtrans "
    "ours ours_wo_simme ours_wo_bdca ours_wo_ot"
).split()
COHORTS = ("DEMO-BLCA", "DEMO-LUAD", "DEMO-UCEC")
N_BOOT = 2000


def _run(spec: str) -> tuple[str, Path, int]:
    """'label=DIR:SEED' -> (label, results dir, seed)."""
    label, _, rest = spec.partition("=")
    where, _, seed = rest.rpartition(":")
    if not label or not where or not seed.isdigit():
        raise SystemExit(f"run spec {spec!r}: expected label=RESULTS_DIR:SEED")
    return label, Path(where), int(seed)


def run_cindex(results: Path, seed: int, model: str, folds: int) -> np.ndarray:
    """Held-out c-index of every cohort x fold of one model, in cohort x fold order."""
    frames = []
    for cohort in COHORTS:
        for k in range(folds):
            f = results / cohort / "train" / model / f"seed{seed}" / f"fold{k}"
            f = f / "predictions.parquet"
            if not f.exists():
                raise SystemExit(f"{f}: missing (is the run finished?)")
            frames.append(pd.read_parquet(f))
    # the evaluation stage's own per-fold c-index (same checks, same NaN rule)
    per_fold = fold_cindex(pd.concat(frames, ignore_index=True))
    per_fold = per_fold.sort_values(["cohort", "fold"])  # the same unit order in every run
    if per_fold["cindex"].isna().any():
        bad = per_fold.loc[per_fold["cindex"].isna(), ["cohort", "fold"]].to_dict("records")
        raise SystemExit(f"{results} {model} seed {seed}: undefined fold c-index {bad}")
    return per_fold["cindex"].to_numpy()


def paired(base: np.ndarray, alt: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """Means, mean paired difference with a bootstrap 95 % CI over units, Wilcoxon p."""
    d = alt - base
    idx = rng.integers(0, len(d), size=(N_BOOT, len(d)))
    boots = d[idx].mean(axis=1)
    p = float(wilcoxon(alt, base).pvalue) if np.any(d != 0) else 1.0
    return {
        "base_mean": float(base.mean()),
        "run_mean": float(alt.mean()),
        "diff": float(d.mean()),
        "lo": float(np.percentile(boots, 2.5)),
        "hi": float(np.percentile(boots, 97.5)),
        "p": p,
    }


def main(argv: list[str] | None = None) -> None:
    """Compare every --alt run with the --base run and write results/<stem>.{json,md}."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="label=RESULTS_DIR:SEED")
    ap.add_argument("--alt", action="append", required=True, help="label=RESULTS_DIR:SEED")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--stem", default="demo_runs")
    ap.add_argument("--models", nargs="+", default=DEEP_MODELS)
    ap.add_argument("--note", default="", help="how the runs were made (Markdown, appended)")
    args = ap.parse_args(argv)
    base_label, base_dir, base_seed = _run(args.base)
    rng = np.random.default_rng(0)
    rows = []
    base_c = {m: run_cindex(base_dir, base_seed, m, args.folds) for m in args.models}
    for spec in args.alt:
        label, alt_dir, alt_seed = _run(spec)
        alt_c = {m: run_cindex(alt_dir, alt_seed, m, args.folds) for m in args.models}
        for m in args.models:
            rows.append({"run": label, "model": m, **paired(base_c[m], alt_c[m], rng)})
        pooled = np.concatenate([alt_c[m] - base_c[m] for m in args.models])
        rows.append(
            {
                "run": label,
                "model": "all (mean over models)",
                **paired(
                    np.concatenate([base_c[m] for m in args.models]),
                    np.concatenate([alt_c[m] for m in args.models]),
                    rng,
                ),
                "mean_abs_diff": float(np.abs(pooled).mean()),
            }
        )
    meta = run_meta("compare_demo_runs.py", argv, base=args.base, alt=args.alt, n_boot=N_BOOT)
    md = [
        f"# Demo runs compared with `{base_label}` (paired held-out c-index)",
        "",
        f"Command: `{meta['command']}`; {meta['date']}; {meta['machine']}.",
        f"Units: {len(COHORTS)} cohorts x {args.folds} folds per model (~10 held-out cases each);",
        f"95 % CI: bootstrap over the units ({N_BOOT} resamples); p: Wilcoxon signed-rank.",
        "",
        f"| run | model | {base_label} | this run | this run - {base_label} [95 % CI] | p |",
        "|---|---|---:|---:|---|---:|",
    ]
    for r in rows:
        md.append(
            f"| {r['run']} | {r['model']} | {r['base_mean']:.3f} | {r['run_mean']:.3f} | "
            f"{r['diff']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}] | {r['p']:.3f} |"
        )
    for r in rows:
        if "mean_abs_diff" in r:
            md.append("")
            md.append(
                f"{r['run']}: mean |paired difference| over all models' units "
                f"{r['mean_abs_diff']:.3f}."
            )
    if args.note:
        md += ["", args.note]
    write_json_md(args.stem, {**meta, "rows": rows}, md)


if __name__ == "__main__":
    main()
