"""CPU time of paired bootstrap c-indices: sksurv one resample at a time vs pair matrices.

`evaluate/stats.py` scores bootstrap resamples of a cohort either one by one through
scikit-survival's `concordance_index_censored` (kept above PAIR_MATRIX_MAX_CASES) or all at once
through the cohort's pair matrices (`resampled_cindices`). For each cohort size this draws a
seeded synthetic cohort (exponential times, ~60 % deaths, tied times from rounding to days,
two risk scores as in a paired model comparison), runs both paths on the same resamples
(same seed), checks they agree, and times each in process CPU seconds. The arms alternate,
the median over repeats is reported, and the ratio is taken repeat by repeat.

    python benchmarks/bench_bootstrap.py                       # 50, 150, 400, 1100 cases
    python benchmarks/bench_bootstrap.py --cases 50 --repeats 1 --out-stem bootstrap_smoke

Results: benchmarks/results/bootstrap.json and bootstrap.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
from _common import run_meta, write_json_md  # noqa: E402

from mmsurv.evaluate import stats  # noqa: E402


def synthetic_cohort(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Days to event or censoring, event flags and two correlated risk scores."""
    rng = np.random.default_rng(seed)
    risk_a = rng.normal(size=n)
    risk_b = 0.7 * risk_a + 0.7 * rng.normal(size=n)
    death = rng.exponential(1000.0 * np.exp(-0.5 * risk_a))
    censor = rng.exponential(1500.0, size=n)
    time_days = np.round(np.minimum(death, censor)) + 1.0
    return time_days, death <= censor, [risk_a, risk_b]


def time_both(n: int, n_boot: int, seed: int) -> dict[str, Any]:
    """CPU seconds of both paths on the same resamples, and their largest difference."""
    t, e, risks = synthetic_cohort(n, seed)
    start = time.process_time()
    slow = stats._resampled_cindices_one_by_one(t, e, risks, n_boot, np.random.default_rng(seed))
    one_by_one = time.process_time() - start
    start = time.process_time()
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    fast = stats.resampled_cindices(t, e, risks, idx)
    matrices = time.process_time() - start
    both = ~np.isnan(slow) & ~np.isnan(fast)
    if not np.array_equal(np.isnan(slow), np.isnan(fast)):
        raise AssertionError(f"{n} cases: the two paths skip different resamples")
    return {
        "cases": n,
        "events": int(e.sum()),
        "resamples": n_boot,
        "one_by_one_cpu_s": one_by_one,
        "pair_matrices_cpu_s": matrices,
        "max_abs_diff": float(np.max(np.abs(slow[both] - fast[both]))) if both.any() else 0.0,
    }


def write_results(meta: dict[str, Any], runs: list[dict[str, Any]], stem: str) -> Path:
    """Write <stem>.json (every run) and <stem>.md (medians and ratios per cohort size)."""
    rows = []
    for n in sorted({r["cases"] for r in runs}):
        rs = [r for r in runs if r["cases"] == n]
        rows.append(
            {
                "cases": n,
                "repeats": len(rs),
                "one_by_one_cpu_s": statistics.median(r["one_by_one_cpu_s"] for r in rs),
                "pair_matrices_cpu_s": statistics.median(r["pair_matrices_cpu_s"] for r in rs),
                "ratio": statistics.median(
                    r["one_by_one_cpu_s"] / r["pair_matrices_cpu_s"] for r in rs
                ),
                "max_abs_diff": max(r["max_abs_diff"] for r in rs),
            }
        )
    lines = [
        "# Paired bootstrap c-indices: one resample at a time (sksurv) vs pair matrices",
        "",
        f"Written by `{meta['command']}` on {meta['date']} ({meta['machine']}, numpy "
        f"{meta['numpy']}). "
        f"{meta['resamples']} resamples of 2 risk scores per run, the same resamples in both "
        "paths; process CPU seconds, median over repeats; ratio = median of the per-repeat "
        "ratios; max |diff| = largest difference between the two paths' c-indices.",
        "",
        "| cases | repeats | one by one, CPU s | pair matrices, CPU s | ratio | max abs diff |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['cases']} | {r['repeats']} | {r['one_by_one_cpu_s']:.2f} | "
            f"{r['pair_matrices_cpu_s']:.3f} | {r['ratio']:.0f} | {r['max_abs_diff']:.1e} |"
        )
    return write_json_md(stem, {"meta": meta, "runs": runs, "summary": rows}, lines)


def main(argv: list[str] | None = None) -> None:
    """Time both bootstrap paths at each cohort size; write the results files."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, nargs="+", default=[50, 150, 400, 1100])
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out-stem", default="bootstrap")
    args = ap.parse_args(argv)
    meta = run_meta("bench_bootstrap.py", argv, numpy=np.__version__, resamples=args.resamples)
    runs = []
    for n in args.cases:
        for rep in range(args.repeats):
            run = time_both(n, args.resamples, seed=rep)
            print(json.dumps(run), flush=True)
            runs.append(run)
    print(write_results(meta, runs, args.out_stem).read_text())


if __name__ == "__main__":
    main()
