"""Coxnet floor: how much the held-out c-index depends on the inner-CV seed, per inner_repeats.

The floor `coxnet_omic` picks its elastic-net alpha by an inner CV on the training cases. On
~300 real cases one shuffle of that inner CV is noisy: the chosen alpha, and with it the test
c-index, move with the seed. This runs the floor's real fold job (`train_fold`) for every fold
x seed x `inner_repeats` on a cohort the workflow has prepared (omics.parquet, families.json,
splits.tsv, clinical.tsv: e.g. the `default` run of bench_real_genomics.py) and reports, per
`inner_repeats`, the mean over folds for each seed and the mean within-fold range over seeds.

    python benchmarks/bench_coxnet_inner_cv.py \\
        --inputs /tmp/mmsurv-bench-real-genomics/default --cohort TCGA-BLCA --repeats 1 3

Results: benchmarks/results/coxnet_inner_cv.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from pathlib import Path

import pandas as pd

from mmsurv.training import model_params, train_fold

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def run(inputs: Path, cohort: str, repeats: int, seed: int, fold: int, work: Path) -> float:
    """One coxnet_omic fold job with the given inner_repeats and seed; its test c-index."""
    training = {"models": ["coxnet_omic"], "seeds": [seed], "device": "cpu"}
    training["model_kwargs"] = {"coxnet_omic": {"inner_repeats": repeats}}
    params = model_params(training, "coxnet_omic")
    params.update(num_threads=1, missing_modality="error")
    out = work / cohort / f"r{repeats}" / f"s{seed}" / f"f{fold}"
    train_fold(
        cohort=cohort,
        model_name="coxnet_omic",
        fold=fold,
        bags_h5=None,
        omics_parquet=str(inputs / cohort / "omics.parquet"),
        families_json=str(inputs / cohort / "families.json"),
        clinical_tsv=str(inputs / "byo" / cohort / "clinical.tsv"),
        splits_tsv=str(inputs / cohort / "splits.tsv"),
        out_dir=str(out),
        params=params,
        seed=seed,
        device="cpu",
    )
    return float(json.loads((out / "meta.json").read_text())["test_cindex"])


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per inner_repeats: each seed's fold mean, and the mean within-fold range over seeds."""
    out = []
    for r, g in rows.groupby("repeats"):
        by_seed = g.groupby("seed")["cindex"].mean()
        ranges = g.groupby("fold")["cindex"].agg(lambda c: c.max() - c.min())
        out.append(
            {
                "repeats": int(r),
                "seed_means": {int(s): round(float(v), 4) for s, v in by_seed.items()},
                "spread_of_seed_means": float(by_seed.max() - by_seed.min()),
                "mean_within_fold_range": float(ranges.mean()),
                "mean": float(g["cindex"].mean()),
                "std_over_runs": float(statistics.stdev(g["cindex"])),
            }
        )
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> None:
    """Run every fold x seed x inner_repeats and write JSON + Markdown."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=Path, required=True)
    ap.add_argument("--cohort", default="TCGA-BLCA")
    ap.add_argument("--repeats", nargs="+", type=int, default=[1, 3])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("/tmp/mmsurv-bench-coxnet"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    rows = [
        {
            "repeats": r,
            "seed": s,
            "fold": k,
            "cindex": run(args.inputs, args.cohort, r, s, k, args.work),
        }
        for r in args.repeats
        for s in args.seeds
        for k in range(args.folds)
    ]
    table = summary(pd.DataFrame(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"cohort": args.cohort, "runs": rows, "summary": table.to_dict("records")}
    (args.out / "coxnet_inner_cv.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"# coxnet_omic on {args.cohort}: test c-index vs the inner-CV seed",
        "",
        "| inner_repeats | mean over folds, per seed | spread of seed means | "
        "mean within-fold range over seeds | mean ± std (all runs) |",
        "|---:|---|---:|---:|---|",
    ]
    for r in table.to_dict("records"):
        seeds = ", ".join(f"{s}: {v:.3f}" for s, v in r["seed_means"].items())
        lines.append(
            f"| {r['repeats']} | {seeds} | {r['spread_of_seed_means']:.3f} | "
            f"{r['mean_within_fold_range']:.3f} | {r['mean']:.3f} ± {r['std_over_runs']:.3f} |"
        )
    (args.out / "coxnet_inner_cv.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
