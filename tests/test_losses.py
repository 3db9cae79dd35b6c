"""mmsurv.training.losses: MCAT's discrete-time NLL, checked against hand arithmetic."""

from __future__ import annotations

import math

import pytest
import torch

from mmsurv.training.losses import nll_surv_loss


def test_nll_matches_hand_computation():
    hazards = torch.tensor([[0.1, 0.2, 0.5, 0.5], [0.3, 0.4, 0.5, 0.6]], dtype=torch.float64)
    label = torch.tensor([1, 2])
    event = torch.tensor([True, False])
    # Case 1 (event in bin 1): S(0) = 0.9, h(1) = 0.2 → −log 0.9 − log 0.2.
    case1 = -math.log(0.9) - math.log(0.2)  # 0.105361 + 1.609438 = 1.714798
    # Case 2 (censored in bin 2): S(2) = 0.7 · 0.6 · 0.5 = 0.21 → −log 0.21.
    case2 = -math.log(0.21)  # 1.560648
    expected = (case1 + case2) / 2  # 1.637723
    got = nll_surv_loss(hazards, label, event)
    assert got.item() == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(1.637723, abs=1e-6)
    # alpha = 0.4: 0.6 · (both) + 0.4 · (uncensored only) = (0.6 · 3.275446 + 0.4 · 1.714798) / 2
    got_a = nll_surv_loss(hazards, label, event, alpha=0.4)
    assert got_a.item() == pytest.approx((0.6 * (case1 + case2) + 0.4 * case1) / 2, rel=1e-9)


def test_nll_event_in_first_bin_uses_s_minus_one_equal_one():
    hazards = torch.tensor([[0.25, 0.5]])
    got = nll_surv_loss(hazards, torch.tensor([0]), torch.tensor([True]))
    assert got.item() == pytest.approx(-math.log(0.25), rel=1e-6)


def test_nll_gradient_finite_even_at_saturation():
    logits = torch.tensor([[30.0, -30.0, 0.0, 5.0], [0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    loss = nll_surv_loss(torch.sigmoid(logits), torch.tensor([3, 0]), torch.tensor([True, False]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    ("hazards", "label", "event", "exc", "match"),
    [
        (torch.rand(4), torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.bool),
         ValueError, r"\(B, T\)"),
        (torch.rand(2, 4), torch.zeros(3, dtype=torch.long), torch.ones(2, dtype=torch.bool),
         ValueError, r"label must have shape \(2,\)"),
        (torch.rand(2, 4), torch.zeros(2), torch.ones(2, dtype=torch.bool),
         TypeError, "torch.long"),
        (torch.rand(2, 4), torch.zeros(2, dtype=torch.long), torch.ones(2),
         TypeError, "event must be torch.bool"),
        (torch.rand(2, 4), torch.tensor([0, 4]), torch.ones(2, dtype=torch.bool),
         ValueError, r"\[0, 3\]"),
    ],
)  # fmt: skip
def test_nll_rejects_bad_inputs(hazards, label, event, exc, match):
    with pytest.raises(exc, match=match):
        nll_surv_loss(hazards, label, event)
