"""Snakemake's own CPU on a queue of short jobs: its scheduler as is against one pending timer.

A generated toy workflow: N jobs of 0.3 s (`sleep`), each with the same 40 small input files,
run with `--cores 2`, so nearly all jobs wait for cores for the whole run, as the demo's 240
train jobs do. The two Snakefiles differ only in the first two lines, which call
`mmsurv.scheduler.one_reevaluation_timer()`. Runs alternate (as is, patched, as is, ...), so
both see the same machine load. Snakemake's own CPU (user + system of its main process, not of
its jobs) is read from /proc/<pid>/stat while it runs; wall time from the clock.

    python benchmarks/bench_scheduler.py                      # N = 200 and 400, 2 pairs each
    python benchmarks/bench_scheduler.py --jobs 100 --repeats 1 --out-stem scheduler_smoke

Results: benchmarks/results/scheduler.json and scheduler.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import run_meta, write_json_md

REPO = Path(__file__).resolve().parents[1]
N_INPUTS = 40
JOB_SECONDS = 0.3
CORES = 2
PATCH = "from mmsurv.scheduler import one_reevaluation_timer\n\none_reevaluation_timer()\n"
TOY = """
rule all:
    input:
        expand("out/j_{{i}}", i=range({n})),

rule job:
    input:
        expand("in/f_{{k}}", k=range({k})),
    output:
        "out/j_{{i}}",
    shell:
        "sleep {s}; touch {{output}}"
"""


def _own_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process (not its children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # after the ")" of comm: state is field 0, utime 11, stime 12 (clock ticks)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_toy(workdir: Path, n_jobs: int, patched: bool) -> dict[str, Any]:
    """Run the toy workflow once in a fresh directory; Snakemake's own CPU s and wall s."""
    workdir.mkdir(parents=True)
    (workdir / "in").mkdir()
    for k in range(N_INPUTS):
        (workdir / "in" / f"f_{k}").write_text("x")
    toy = TOY.format(n=n_jobs, k=N_INPUTS, s=JOB_SECONDS)
    (workdir / "Snakefile").write_text((PATCH if patched else "") + toy)
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow"))
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(CORES), "--quiet", "all"]
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    cpu = 0.0
    while proc.poll() is None:
        sample = _own_cpu_seconds(proc.pid)
        if sample is not None:
            cpu = sample
        time.sleep(0.1)
    wall = time.monotonic() - start
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"toy workflow failed in {workdir}:\n{stderr[-2000:]}")
    done = len(list((workdir / "out").iterdir()))
    if done != n_jobs:
        raise RuntimeError(f"toy workflow in {workdir} made {done} of {n_jobs} outputs")
    return {"jobs": n_jobs, "patched": patched, "snakemake_cpu_s": cpu, "wall_s": wall}


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per job count: medians of both arms and the median of the pairwise ratios."""
    rows = []
    for n in sorted({r["jobs"] for r in runs}):
        asis = [r for r in runs if r["jobs"] == n and not r["patched"]]
        patched = [r for r in runs if r["jobs"] == n and r["patched"]]
        row: dict[str, Any] = {"jobs": n, "pairs": len(asis)}
        row["ideal_wall_s"] = n * JOB_SECONDS / CORES
        for key in ("snakemake_cpu_s", "wall_s"):
            row[f"{key}_as_is"] = statistics.median(r[key] for r in asis)
            row[f"{key}_patched"] = statistics.median(r[key] for r in patched)
            row[f"{key}_ratio"] = statistics.median(
                a[key] / p[key] for a, p in zip(asis, patched, strict=True)
            )
        rows.append(row)
    return rows


def write_results(meta: dict[str, Any], runs: list[dict[str, Any]], stem: str) -> Path:
    """Write <stem>.json (every run) and <stem>.md (the summary table)."""
    rows = summarize(runs)
    lines = [
        "# Snakemake's scheduler: as is vs one pending re-evaluation timer",
        "",
        f"Written by `{meta['command']}` on {meta['date']} ({meta['machine']}, Snakemake "
        f"{meta['snakemake']}). Toy: N jobs of {JOB_SECONDS} s with {N_INPUTS} inputs each, "
        f"`--cores {CORES}`; Snakemake's own CPU = user + system of its main process. Medians "
        "over the pairs; ratio = median of as-is / patched, pair by pair.",
        "",
        "| jobs | pairs | Snakemake CPU s, as is | patched | ratio | wall s, as is | patched "
        "| ratio | ideal wall s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['jobs']} | {r['pairs']} | {r['snakemake_cpu_s_as_is']:.1f} | "
            f"{r['snakemake_cpu_s_patched']:.1f} | {r['snakemake_cpu_s_ratio']:.2f} | "
            f"{r['wall_s_as_is']:.1f} | {r['wall_s_patched']:.1f} | {r['wall_s_ratio']:.2f} | "
            f"{r['ideal_wall_s']:.0f} |"
        )
    return write_json_md(stem, {"meta": meta, "runs": runs, "summary": rows}, lines)


def main(argv: list[str] | None = None) -> None:
    """Alternate as-is and patched toy runs at each job count; write the results files."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, nargs="+", default=[200, 400])
    ap.add_argument("--repeats", type=int, default=2, help="pairs per job count")
    ap.add_argument("--out-stem", default="scheduler")
    args = ap.parse_args(argv)
    import snakemake

    meta = run_meta("bench_scheduler.py", argv, snakemake=snakemake.__version__)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench_scheduler_") as tmp:
        for n in args.jobs:
            for rep in range(args.repeats):
                for patched in (False, True):
                    arm = "patched" if patched else "as_is"
                    run = run_toy(Path(tmp) / f"n{n}_{rep}_{arm}", n, patched)
                    print(json.dumps(run), flush=True)
                    runs.append(run)
    print(write_results(meta, runs, args.out_stem).read_text())


if __name__ == "__main__":
    main()
