"""Snakemake's scheduler keeps one pending wake-up; its passes do not pile up with finished jobs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from snakemake.scheduling.job_scheduler import JobScheduler

from mmsurv import scheduler

ROOT = Path(__file__).resolve().parents[1]


class _FakeScheduler:
    """The two attributes the patched method touches."""

    def __init__(self) -> None:
        self._open_jobs = threading.Semaphore(0)

    def wakeups(self, wait: float) -> int:
        """Count the wake-ups that arrive within `wait` seconds."""
        n = 0
        deadline = time.monotonic() + wait
        while self._open_jobs.acquire(timeout=max(deadline - time.monotonic(), 0.001)):
            n += 1
        return n


def test_many_requests_give_one_wakeup() -> None:
    fake = _FakeScheduler()
    for _ in range(50):
        scheduler._one_timer_reevaluation(fake, 0.2)
    assert fake.wakeups(0.8) == 1


def test_earlier_request_replaces_a_later_one() -> None:
    fake = _FakeScheduler()
    scheduler._one_timer_reevaluation(fake, 5.0)
    start = time.monotonic()
    scheduler._one_timer_reevaluation(fake, 0.1)
    assert fake._open_jobs.acquire(timeout=2.0)
    assert time.monotonic() - start < 2.0
    # the cancelled 5-s timer does not wake it again
    assert fake.wakeups(0.3) == 0


def test_woken_pass_can_ask_for_the_next_wakeup() -> None:
    fake = _FakeScheduler()
    scheduler._one_timer_reevaluation(fake, 0.05)
    assert fake._open_jobs.acquire(timeout=2.0)
    # the fired timer was forgotten, so this request starts a new one instead of being dropped
    scheduler._one_timer_reevaluation(fake, 0.05)
    assert fake._open_jobs.acquire(timeout=2.0)
    assert fake._mmsurv_pending_timer is None


def test_patch_is_idempotent_and_in_the_workflow() -> None:
    assert scheduler.one_reevaluation_timer()
    assert scheduler.one_reevaluation_timer()
    assert JobScheduler._schedule_reevalutation is scheduler._one_timer_reevaluation
    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert re.search(r"^one_reevaluation_timer\(\)$", common, flags=re.M)


TOY = """
from mmsurv.scheduler import one_reevaluation_timer

one_reevaluation_timer()

rule all:
    input:
        expand("out/med_{i}", i=range(10)),
        expand("out/short_{j}", j=range(24)),

rule med:
    output:
        "out/med_{i}",
    shell:
        "sleep 1.5; touch {output}"

rule short:
    output:
        "out/short_{j}",
    shell:
        "sleep 0.2; touch {output}"
"""


def _passes_between_finishes(log: str) -> list[int]:
    """Scheduling passes (verbose 'Ready jobs' lines) between successive finished jobs."""
    counts, n = [], 0
    for line in log.splitlines():
        if line.startswith("Ready jobs"):
            n += 1
        elif line.startswith("Finished jobid"):
            counts.append(n)
            n = 0
    return counts


def test_scheduler_passes_do_not_pile_up(tmp_path: Path) -> None:
    """With jobs waiting for cores, each finished job must not add a wake-up chain."""
    (tmp_path / "Snakefile").write_text(TOY)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "workflow"))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--verbose", "--nocolor"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((tmp_path / "out").iterdir())) == 34
    counts = _passes_between_finishes(proc.stderr)
    assert len(counts) == 35, counts
    # Snakemake as is: passes between finishes grow with the jobs finished so far (measured on
    # this toy: 1, 1, ..., 17, 9, 20, ..., 33); with one pending timer they stay at 1-3.
    late = counts[len(counts) // 2 : -1]
    assert max(late) <= 4, counts


def test_zero_delay_still_wakes() -> None:
    fake = _FakeScheduler()
    scheduler._one_timer_reevaluation(fake, 0.0)
    assert fake._open_jobs.acquire(timeout=2.0)
