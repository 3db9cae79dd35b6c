"""Workaround for Snakemake's scheduler waking itself more often with every finished job."""

from __future__ import annotations

import threading
import time
from typing import Any

# Snakemake 9.x (checked on 9.27): every scheduling pass that leaves jobs waiting calls
# JobScheduler._schedule_reevalutation(timespan), which starts a threading.Timer that wakes
# the scheduler again. A pass woken by a finished job starts one more timer, so the timer
# chains never merge: with N finished jobs and jobs still waiting, the scheduler runs ~N
# passes a second, each one selecting over (and stat-ing the inputs of) every ready job.
# Snakemake's own CPU then grows quadratically with the run (benchmarks/results/demo_time.md).
# The patch keeps at most one pending timer, the earliest one asked for; every pass that
# needs a later wake-up asks again, so no wake-up the scheduler relies on is lost.

_LOCK = threading.Lock()


def _one_timer_reevaluation(self: Any, delay: float) -> None:
    """Wake the scheduler after `delay` s unless an earlier wake-up is already pending."""
    due = time.monotonic() + delay
    with _LOCK:
        pending = getattr(self, "_mmsurv_pending_timer", None)
        if pending is not None:
            pending_due, pending_timer = pending
            if pending_due <= due:
                return
            pending_timer.cancel()

        def fire() -> None:
            with _LOCK:
                current = getattr(self, "_mmsurv_pending_timer", None)
                if current is not None and current[1] is timer:
                    # forget it before waking the pass, so that pass can start the next one
                    self._mmsurv_pending_timer = None
            self._open_jobs.release()

        timer = threading.Timer(delay, fire)
        # a pending wake-up must not keep a finished Snakemake process alive
        timer.daemon = True
        self._mmsurv_pending_timer = (due, timer)
        timer.start()


def one_reevaluation_timer() -> bool:
    """Patch Snakemake's JobScheduler to keep one pending re-evaluation timer; True if patched."""
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return False
    if not hasattr(JobScheduler, "_schedule_reevalutation"):
        # a Snakemake that renamed the method: leave its scheduler as it is
        return False
    JobScheduler._schedule_reevalutation = _one_timer_reevaluation
    return True
