"""train_one_epoch in isolation: gradient accumulation, the partial last step, the L1 penalty.

Also the MCAT-compatible switches: l1_scaling per_case, l1_scope omic, partial_step false.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmsurv.models import ModelOutput, create_model
from mmsurv.training.dataset import SurvivalDataset
from mmsurv.training.loop import StepConfig, fit_epochs, l1_parameters, train_one_epoch
from mmsurv.training.losses import nll_surv_loss
from mmsurv.training.params import resolve_params

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


def test_step_config_defaults_are_the_param_defaults():
    """StepConfig's defaults are today's behaviour, the same as resolve_params' defaults."""
    p, cfg = resolve_params({}), StepConfig(dev=CPU, need_path=False, need_omic=True)
    assert (cfg.l1_scaling, cfg.l1_scope, cfg.partial_step) == (
        p["l1_scaling"], p["l1_scope"], p["partial_step"]
    ) == ("per_step", "all", True)  # fmt: skip
    assert (p["bins_fit_on"], p["omic_input"]) == ("train", "families")


@pytest.mark.parametrize(("n", "grad_accum"), [(4, 4), (2, 4), (3, 3)])
def test_l1_per_case_adds_l1_reg_sign_w_for_every_case(n, grad_accum):
    """per_case (MCAT's lambda_reg): Δw = lr·l1·sign(w)·n, i.e. grad_accum·lr·l1·sign(w) a step."""
    l1 = 0.01
    ds = _cohort(n, seed=2)
    plain, penalised = _model(2), _model(2)
    w0 = _params(plain)

    res0, _ = _epoch(plain, ds, list(range(n)), grad_accum=grad_accum)
    res1, _ = _epoch(
        penalised, ds, list(range(n)), grad_accum=grad_accum, l1_reg=l1, l1_scaling="per_case"
    )

    for a, b, w in zip(plain.parameters(), penalised.parameters(), w0, strict=True):
        expected = LR * l1 * torch.sign(w) * n
        torch.testing.assert_close((a - b).detach(), expected, rtol=0, atol=1e-6)
    l1_norm = float(sum(w.abs().sum() for w in w0))
    assert res1.loss - res0.loss == pytest.approx(l1 * l1_norm, rel=1e-5)


def test_l1_per_case_matches_mcat_loop_over_steps():
    """per_case over several steps equals MCAT's `loss / gc + lambda_reg * l1(model)` loop."""
    l1, gc, order = 0.02, 2, [1, 3, 0, 2]
    ds = _cohort(4, seed=5)
    model, ref = _model(5), _model(5)
    _epoch(model, ds, order, grad_accum=gc, l1_reg=l1, l1_scaling="per_case")
    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    for batch_idx, i in enumerate(order):
        loss = _batch_loss(ref, ds, [i]) / gc + l1 * sum(q.abs().sum() for q in ref.parameters())
        loss.backward()
        if (batch_idx + 1) % gc == 0:
            opt.step()
            opt.zero_grad()
    for got, want in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(got.detach(), want.detach(), rtol=0, atol=1e-6)


def _porpoise(seed: int) -> torch.nn.Module:
    """A small real multimodal model (PORPOISE) with a declared genomics branch."""
    torch.manual_seed(seed)
    return create_model("porpoise", n_bins=N_BINS, path_dim=8, omic_sizes=[DIM], hidden=16, d=16)


def test_l1_scope_omic_penalises_the_genomics_branch_only():
    """l1_scope omic on a multimodal model: path-branch weights get no L1 gradient."""
    l1, n = 0.01, 3
    rng = np.random.default_rng(6)
    ds = _cohort(n, seed=6)
    ds.bags = {c: rng.normal(size=(5, 8)).astype(np.float32) for c in ds.case_ids}
    plain, penalised = _porpoise(6), _porpoise(6)
    w0 = _params(plain)
    omic = {id(q) for q in penalised.omic_parameters()}
    for model, l1_reg in ((plain, 0.0), (penalised, l1)):
        torch.manual_seed(0)  # the same dropout masks in both runs
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        cfg = StepConfig(
            dev=CPU, need_path=True, need_omic=True, grad_accum=n, l1_reg=l1_reg, l1_scope="omic"
        )
        train_one_epoch(model, opt, ds, list(range(n)), cfg)
    n_path = 0
    for a, b, w in zip(plain.parameters(), penalised.parameters(), w0, strict=True):
        in_omic = id(b) in omic
        # one step of n = grad_accum cases, per_step: l1 once
        expected = LR * l1 * torch.sign(w) if in_omic else torch.zeros_like(w)
        torch.testing.assert_close((a - b).detach(), expected, rtol=0, atol=1e-6)
        n_path += not in_omic and bool(w.abs().sum() > 0)
    assert n_path > 0  # some nonzero path-branch weights really were left alone
    assert 0 < len(omic) < len(list(penalised.parameters()))


def test_l1_scope_omic_refuses_a_model_without_omics():
    """A pathology-only model has no genomics branch to penalise."""
    torch.manual_seed(0)
    model = create_model("attn_mil", n_bins=N_BINS, path_dim=8)
    with pytest.raises(ValueError, match="reads no omics"):
        l1_parameters(model, "omic")
    assert len(l1_parameters(model, "all")) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="does not declare its genomics branch"):
        l1_parameters(_model(0), "omic")  # a plain nn.Module is not a SurvModel


def _mcat_loop(model, ds, order, gc: int, epochs: int) -> list[int]:
    """MCAT's train_loop_survival: no zero_grad at epoch start, no step for the leftover."""
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    steps = []
    for _ in range(epochs):
        n_steps = 0
        for batch_idx, i in enumerate(order):
            (_batch_loss(model, ds, [i]) / gc).backward()
            if (batch_idx + 1) % gc == 0:
                opt.step()
                opt.zero_grad()
                n_steps += 1
        steps.append(n_steps)
    return steps


def test_no_partial_step_carries_the_leftover_into_the_next_epoch():
    """partial_step false, 5 cases, grad_accum 2: 2 steps an epoch; case 5's gradient carries."""
    ds = _cohort(5, seed=1)
    order = [3, 0, 4, 1, 2]
    model, ref, stepped = _model(1), _model(1), _model(1)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    steps = []
    opt.register_step_post_hook(lambda *_: steps.append(1))
    cfg = StepConfig(dev=CPU, need_path=False, need_omic=True, grad_accum=2, partial_step=False)

    train_one_epoch(model, opt, ds, order, cfg)
    assert len(steps) == 2
    # The leftover case's gradient (its loss / 2 at the weights after step 2) is still there.
    after_two = _model(1)
    _mcat_loop(after_two, ds, order[:4], gc=2, epochs=1)
    after_two.zero_grad()
    (_batch_loss(after_two, ds, [order[4]]) / 2).backward()
    for q, want in zip(model.parameters(), after_two.parameters(), strict=True):
        torch.testing.assert_close(q.grad, want.grad, rtol=0, atol=1e-7)
        assert q.grad.abs().sum() > 0

    train_one_epoch(model, opt, ds, order, cfg)  # its first step adds the carried gradient
    assert len(steps) == 4
    assert _mcat_loop(ref, ds, order, gc=2, epochs=2) == [2, 2]
    for got, want in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(got.detach(), want.detach(), rtol=0, atol=1e-6)
    # Guard: with the default partial step the weights differ.
    _epoch(stepped, ds, order, grad_accum=2)
    _epoch(stepped, ds, order, grad_accum=2)
    assert not torch.allclose(stepped.lin.weight, model.lin.weight, atol=1e-6)


def test_fit_epochs_without_partial_step_matches_mcat_and_drops_the_last_leftover():
    """fit_epochs over 3 epochs equals MCAT's loop; the last leftover is never applied."""
    ds = _cohort(5, seed=7)
    order = [4, 2, 0, 3, 1]
    model, ref = _model(7), _model(7)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    cfg = StepConfig(dev=CPU, need_path=False, need_omic=True, grad_accum=2, partial_step=False)
    fit = fit_epochs(model, opt, order, ds, None, cfg, 3, [])
    assert len(fit.history) == 3
    assert _mcat_loop(ref, ds, order, gc=2, epochs=3) == [2, 2, 2]
    for got, want in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(got.detach(), want.detach(), rtol=0, atol=1e-6)
        assert got.grad is None or not got.grad.any()


def test_non_finite_loss_fails_at_once_naming_epoch_case_and_model():
    """An inf omics value reaches the loss as NaN: the job stops, it does not train on."""
    from mmsurv.training.loop import NonFiniteLossError

    ds = _cohort(6)
    ds.omics[0][4, 0] = np.inf  # case c4
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    cfg = StepConfig(dev=CPU, need_path=False, need_omic=True, model_name="snn")
    before = _params(model)
    with pytest.raises(NonFiniteLossError, match=r"model snn: .*at epoch 3, case c4"):
        train_one_epoch(model, opt, ds, [4, 0, 1], cfg, epoch=2)
    fit_cfg = StepConfig(dev=CPU, need_path=False, need_omic=True, grad_accum=8)
    with pytest.raises(NonFiniteLossError, match=r"model _Linear: .*at epoch 1, case c4"):
        fit_epochs(model, opt, None, ds, None, fit_cfg, epochs=2, fallbacks=[])
    # the error comes before the optimizer steps on the NaN gradient: the weights stay finite
    assert all(torch.isfinite(a).all() for a in _params(model))
    assert all(torch.equal(a, b) for a, b in zip(before, _params(model), strict=True))


def test_nan_loss_fails_naming_the_case():
    ds = _cohort(4)
    ds.omics[0][2, :] = np.nan  # case c2: NaN logits, NaN loss
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    cfg = StepConfig(dev=CPU, need_path=False, need_omic=True, model_name="mcat")
    from mmsurv.training.loop import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match=r"mcat: training loss is nan at epoch 1, case c2"):
        train_one_epoch(model, opt, ds, [0, 2, 1], cfg)
    assert all(torch.isfinite(q).all() for q in model.parameters())


class _WithUnused(_Linear):
    """_Linear plus a parameter the loss never reaches (no gradient: Adam must skip it)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.ones(3))


def _adam_run(make_opt, epochs: int = 3) -> list[torch.Tensor]:
    """Weights after `epochs` epochs (grad_accum 3, so partial steps too) with make_opt(model)."""
    torch.manual_seed(0)
    model = _WithUnused()
    ds = _cohort(8)
    opt = make_opt(model)
    cfg = StepConfig(dev=CPU, need_path=False, need_omic=True, grad_accum=3)
    for epoch in range(epochs):
        train_one_epoch(model, opt, ds, [5, 1, 7, 0, 3, 2, 6, 4], cfg, epoch=epoch)
    return _params(model)


@pytest.mark.parametrize("fused", [False, True])
def test_training_adam_gives_torch_adam_weights_to_the_bit(fused):
    from mmsurv.training.setup import Adam

    kw = {"lr": 0.05, "weight_decay": 0.01, "fused": fused}
    ref = _adam_run(lambda m: torch.optim.Adam(m.parameters(), **kw))
    ours = _adam_run(lambda m: Adam(m.parameters(), **kw))
    assert all(torch.equal(a, b) for a, b in zip(ref, ours, strict=True))
    # parameters(): the model's own `unused` first, then lin's weight and bias
    assert torch.equal(ours[0], torch.ones(3))  # no gradient, no update (weight decay neither)
    assert not torch.equal(ref[1], _adam_run(lambda m: Adam(m.parameters(), lr=0.0))[1])


def test_make_optimizer_fused_is_the_plain_update_up_to_rounding():
    from mmsurv.training.setup import make_optimizer

    p = {"lr": 0.05, "weight_decay": 0.01}
    assert make_optimizer(_Linear(), p).fused  # a CPU model: torch has the fused kernel
    plain = _adam_run(lambda m: torch.optim.Adam(m.parameters(), **p))
    made = _adam_run(lambda m: make_optimizer(m, p))
    for a, b in zip(plain, made, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"lr": -1.0}, "lr=-1.0"), ({"lr": 0.1, "betas": (0.9, 1.0)}, r"betas=\(0.9, 1.0\)")],
)
def test_training_adam_refuses_bad_settings(kw, match):
    from mmsurv.training.setup import Adam

    with pytest.raises(ValueError, match=match):
        Adam(_Linear().parameters(), **kw)
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([], lr=0.1)
