"""mmsurv.training.concordance: the training loop's c-index equals sksurv's, ties included."""

from __future__ import annotations

import math

import numpy as np
from sksurv.metrics import concordance_index_censored

from mmsurv.training.concordance import cindex


def test_cindex_equals_sksurv_with_tied_times_and_risks() -> None:
    rng = np.random.default_rng(0)
    for n in (2, 5, 40, 200):
        times = rng.integers(1, 8, n).astype(float)  # many tied times
        events = rng.random(n) < 0.5
        events[0] = True
        risks = np.round(rng.normal(size=n), 1)  # many tied risks
        want = concordance_index_censored(events, times, risks)[0]
        assert math.isclose(cindex(events, times, risks), want, rel_tol=1e-12)


def test_cindex_is_nan_without_comparable_pairs_or_finite_risks() -> None:
    assert math.isnan(cindex(np.array([False, False]), np.array([1.0, 2.0]), np.array([0, 1])))
    assert math.isnan(cindex(np.array([True, True]), np.array([1.0, 1.0]), np.array([0, 1])))
    assert math.isnan(cindex(np.array([True, False]), np.array([1.0, 2.0]), np.array([np.nan, 1])))
