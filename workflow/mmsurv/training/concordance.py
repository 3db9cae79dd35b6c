"""Harrell's c-index for the training loop, in numpy (the same pairs and ties as sksurv)."""

from __future__ import annotations

import numpy as np

__all__ = ["cindex"]


def cindex(events: np.ndarray, times: np.ndarray, risks: np.ndarray) -> float:
    """Harrell's c-index, NaN when no pair is comparable or an input is not finite.

    Hand-written rather than sksurv's `concordance_index_censored` (which it equals, see
    tests/test_concordance.py): importing sksurv.metrics pulls sklearn and scipy.stats, about 2.5
    CPU-seconds of start-up in every deep-model train job, which needs only these lines.
    A pair (i, j) is comparable when case i had the event and t_j > t_i, or t_j == t_i with j
    censored; it is concordant when risk_i > risk_j, half when |risk_i - risk_j| <= 1e-8.
    """
    e = np.asarray(events, dtype=bool).ravel()
    t = np.asarray(times, dtype=float).ravel()
    r = np.asarray(risks, dtype=float).ravel()
    if not (len(e) == len(t) == len(r)) or not (np.isfinite(t).all() and np.isfinite(r).all()):
        return float("nan")
    num = 0.0
    den = 0
    for i in np.flatnonzero(e):  # one vector per event: O(n) memory for any cohort size
        comparable = (t > t[i]) | ((t == t[i]) & ~e)
        n = int(comparable.sum())
        if n == 0:
            continue
        diff = r[i] - r[comparable]
        tied = np.abs(diff) <= 1e-8
        num += float((diff[~tied] > 0).sum()) + 0.5 * float(tied.sum())
        den += n
    return num / den if den else float("nan")
