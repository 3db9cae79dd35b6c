"""train_one_epoch in isolation: gradient accumulation, the partial last step, the L1 penalty."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmsurv.models import ModelOutput
from mmsurv.training.dataset import SurvivalDataset
from mmsurv.training.loop import StepConfig, train_one_epoch
from mmsurv.training.losses import nll_surv_loss

N_BINS = 4
DIM = 6
LR = 0.1
CPU = torch.device("cpu")


class _Linear(torch.nn.Module):
    """Omics-only model: one linear layer from the first family to the bin logits."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(DIM, N_BINS)

    def forward(self, path, omics):
        return ModelOutput.from_logits(self.lin(omics[0]).unsqueeze(0))


def _cohort(n: int, seed: int = 0) -> SurvivalDataset:
    """n cases with random omics, bins and events (both events and censoring present)."""
    rng = np.random.default_rng(seed)
    events = np.arange(n) % 2 == 0
    return SurvivalDataset(
        [f"c{i}" for i in range(n)],
        labels=rng.integers(0, N_BINS, size=n),
        events=events,
        times=rng.uniform(1, 50, size=n),
        omics=[rng.normal(size=(n, DIM)).astype(np.float32)],
    )


def _model(seed: int = 0) -> _Linear:
    torch.manual_seed(seed)
    return _Linear()


def _batch_loss(model: _Linear, ds: SurvivalDataset, idx: list[int]) -> torch.Tensor:
    """Mean NLL over the cases `idx`, in one forward pass over all of them (no training loop)."""
    x = ds.omics[0][idx]
    res = ModelOutput.from_logits(model.lin(x))
    label = torch.as_tensor(ds.labels[idx], dtype=torch.long)
    event = torch.as_tensor(ds.events[idx], dtype=torch.bool)
    return nll_surv_loss(res.hazards, label, event)


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [q.detach().clone() for q in model.parameters()]


def _epoch(model, ds, order, **cfg) -> tuple[object, int]:
    """One epoch with plain SGD; return its result and the number of optimizer steps."""
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    steps = []
    opt.register_step_post_hook(lambda *_: steps.append(1))
    cfg = StepConfig(dev=CPU, need_path=False, need_omic=True, **cfg)
    return train_one_epoch(model, opt, ds, order, cfg), len(steps)


def test_accumulated_batch_one_steps_equal_one_step_on_the_mean_loss():
    """N cases with grad_accum=N: one optimizer step, the same update as on the mean loss."""
    n = 4
    ds = _cohort(n)
    model, ref = _model(), _model()
    before = _params(model)

    result, steps = _epoch(model, ds, [2, 0, 3, 1], grad_accum=n)

    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    loss = _batch_loss(ref, ds, list(range(n)))
    loss.backward()
    opt.step()
    assert steps == 1
    for got, want, old in zip(model.parameters(), ref.parameters(), before, strict=True):
        assert not torch.allclose(got, old)  # the step moved the weights
        torch.testing.assert_close(got.detach(), want.detach(), rtol=0, atol=1e-6)
    # The epoch's reported loss is the mean per-case loss at the (unchanged) starting weights.
    assert result.loss == pytest.approx(float(loss.detach()), rel=1e-6)
    assert result.loss_surv == result.loss and result.loss_aux == 0.0
    assert sorted(result.risk) == list(range(n))


def test_partial_group_at_epoch_end_gets_its_own_step():
    """5 cases, grad_accum=2: steps after 2, 2 and the leftover 1 (still divided by 2)."""
    ds = _cohort(5, seed=1)
    order = [3, 0, 4, 1, 2]
    model, ref = _model(1), _model(1)

    _, steps = _epoch(model, ds, order, grad_accum=2)

    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    for group in ([3, 0], [4, 1], [2]):
        opt.zero_grad()
        (_batch_loss(ref, ds, group) * len(group) / 2).backward()
        opt.step()
    assert steps == 3
    for got, want in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(got.detach(), want.detach(), rtol=0, atol=1e-6)
    assert all(q.grad is None or not q.grad.any() for q in model.parameters())


def test_without_the_leftover_step_the_weights_would_differ():
    """Guard for the test above: two steps only (dropping the leftover case) is distinguishable."""
    ds = _cohort(5, seed=1)
    model, two_steps = _model(1), _model(1)
    _epoch(model, ds, [3, 0, 4, 1, 2], grad_accum=2)
    _epoch(two_steps, ds, [3, 0, 4, 1], grad_accum=2)
    assert not torch.allclose(model.lin.weight, two_steps.lin.weight, atol=1e-6)


@pytest.mark.parametrize(("n", "grad_accum"), [(4, 4), (2, 4), (3, 3)])
def test_l1_penalty_adds_l1_reg_sign_w_per_case_over_grad_accum(n, grad_accum):
    """l1_reg·Σ|w| is added to each case's loss before / grad_accum: Δw = lr·l1·sign(w)·n/accum."""
    l1 = 0.01
    ds = _cohort(n, seed=2)
    plain, penalised = _model(2), _model(2)
    w0 = _params(plain)

    res0, _ = _epoch(plain, ds, list(range(n)), grad_accum=grad_accum, l1_reg=0.0)
    res1, _ = _epoch(penalised, ds, list(range(n)), grad_accum=grad_accum, l1_reg=l1)

    # One step (n <= grad_accum), so the NLL gradients are equal and only the penalty differs.
    for a, b, w in zip(plain.parameters(), penalised.parameters(), w0, strict=True):
        expected = LR * l1 * torch.sign(w) * n / grad_accum
        torch.testing.assert_close((a - b).detach(), expected, rtol=0, atol=1e-6)
    l1_norm = float(sum(w.abs().sum() for w in w0))
    assert res1.loss - res0.loss == pytest.approx(l1 * l1_norm, rel=1e-5)
    assert res1.loss_surv == pytest.approx(res0.loss_surv, rel=1e-6)


def test_l1_reg_zero_adds_nothing():
    """l1_reg=0: the same update as the unpenalised mean-loss step, and loss == NLL."""
    n = 3
    ds = _cohort(n, seed=3)
    model, ref = _model(3), _model(3)
    result, _ = _epoch(model, ds, list(range(n)), grad_accum=n, l1_reg=0.0)
    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    _batch_loss(ref, ds, list(range(n))).backward()
    opt.step()
    for got, want in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(got.detach(), want.detach(), rtol=0, atol=1e-6)
    assert result.loss == result.loss_surv


def test_l1_uses_the_weights_of_each_step():
    """Across steps the penalty uses the current weights: two steps of size 1 match by hand."""
    l1 = 0.05
    ds = _cohort(2, seed=4)
    model, ref = _model(4), _model(4)
    _epoch(model, ds, [1, 0], grad_accum=1, l1_reg=l1)
    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    for i in (1, 0):
        opt.zero_grad()
        loss = _batch_loss(ref, ds, [i]) + l1 * sum(q.abs().sum() for q in ref.parameters())
        loss.backward()
        opt.step()
    for got, want in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(got.detach(), want.detach(), rtol=0, atol=1e-6)
