"""TransMIL, MCAT and DualTrans (CMTA) baselines, and their Nyström-attention / PPEG layers."""

from __future__ import annotations

import math

import pytest
import torch
from test_models import OMIC_SIZES, PATH_DIM, _inputs  # shared inputs (tests/ is on sys.path)

import mmsurv.models.dualtrans
import mmsurv.models.mcat
import mmsurv.models.transmil  # noqa: F401 - imported to register the models
from mmsurv.models import create_model
from mmsurv.models._transmil_layers import (
    PPEG,
    NystromAttention,
    TransLayer,
    TransMILEncoder,
    iterative_pinv,
    pad_to_square,
)
from mmsurv.models.dualtrans import DualTrans
from mmsurv.models.mcat import MCAT
from mmsurv.training.losses import nll_surv_loss

torch.set_num_threads(1)

MODELS = ["transmil", "mcat", "dualtrans"]
# Small widths keep the CPU tests fast; default widths are covered by test_default_widths_run.
SMALL = {"transmil": {"dim": 64}, "mcat": {"d": 32}, "dualtrans": {"d": 32, "omic_hidden": 64}}


def _model(name: str, small: bool = True, **kw):
    torch.manual_seed(0)
    cfg = {**(SMALL[name] if small else {}), **kw}
    return create_model(name, n_bins=4, path_dim=PATH_DIM, omic_sizes=OMIC_SIZES, **cfg)


def _exact_attention(att: NystromAttention, x: torch.Tensor) -> torch.Tensor:
    """Full softmax attention with the module's own projections (no residual conv)."""
    b, n, _ = x.shape
    q, k, v = att.to_qkv(x).view(b, n, 3, att.heads, att.dim_head).permute(2, 0, 3, 1, 4).unbind(0)
    a = torch.softmax(q @ k.transpose(-1, -2) * att.scale, dim=-1)
    return att.to_out((a @ v).transpose(1, 2).reshape(b, n, -1))


# ---------------------------------------------------------------- every model, every bag size


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("n_patches", [1, 7, 500])
def test_forward_backward(name: str, n_patches: int) -> None:
    model = _model(name).train()
    out = model(*_inputs(n_patches))
    assert out.logits.shape == out.hazards.shape == out.surv.shape == (1, 4)
    assert out.aux_loss.ndim == 0
    for t in (out.logits, out.hazards, out.surv, out.aux_loss):
        assert torch.isfinite(t).all()
    assert ((out.hazards > 0) & (out.hazards < 1)).all()
    assert (out.surv[:, 1:] <= out.surv[:, :-1]).all()
    (out.hazards.sum() + out.aux_loss).backward()
    # the learned missing-modality tokens act only when a modality is withheld
    params = [(n, p) for n, p in model.named_parameters() if not n.startswith("missing_")]
    missing = [n for n, p in params if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for _, p in params)
    nonzero = sum(bool(p.grad.abs().sum() > 0) for _, p in params)
    assert nonzero >= 0.9 * len(params)


@pytest.mark.parametrize("name", MODELS)
def test_eval_deterministic_train_stochastic(name: str) -> None:
    model = _model(name)
    path, omics = _inputs(60)
    with torch.no_grad():
        model.eval()
        a, b = model(path, omics), model(path, omics)
        torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=0)
        torch.testing.assert_close(a.aux_loss, b.aux_loss, rtol=0, atol=0)
        model.train()
        torch.manual_seed(1)
        c = model(path, omics)
        torch.manual_seed(2)
        d = model(path, omics)
    assert not torch.equal(c.logits, d.logits)  # dropout is active in training


@pytest.mark.parametrize("name", MODELS)
def test_default_widths_run(name: str) -> None:
    model = _model(name, small=False)
    out = model(*_inputs(50))
    (out.hazards.sum() + out.aux_loss).backward()
    assert torch.isfinite(out.logits).all()
    # every parameter but the missing-modality tokens (used only when a modality is withheld)
    assert all(
        p.grad is not None for n, p in model.named_parameters() if not n.startswith("missing_")
    )


@pytest.mark.parametrize("name", MODELS)
def test_100k_patch_bag_eval(name: str) -> None:
    """Memory is linear in N: a full N×N attention at 100k patches would need ≥ 40 GB."""
    small = {"transmil": {"dim": 32}, "mcat": {"d": 32}, "dualtrans": {"d": 32, "omic_hidden": 32}}
    model = _model(name, **small[name]).eval()
    path, omics = _inputs(100_000, seed=3)
    with torch.no_grad():
        out = model(path, omics)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.aux_loss)
    assert (out.surv[:, 1:] <= out.surv[:, :-1]).all()


@pytest.mark.parametrize("name", MODELS)
def test_learns_tiny_synthetic_task(name: str) -> None:
    """30 Adam steps on 8 cases whose time bin is written into both modalities lower the NLL."""
    g = torch.Generator().manual_seed(5)
    cases = []
    for i in range(8):
        label = i % 4
        path = torch.randn(12, PATH_DIM, generator=g) * 0.5
        path[:, 0] += 2.0 * label - 3.0
        omics = [torch.randn(s, generator=g) * 0.5 for s in OMIC_SIZES]
        omics[1][0] += 2.0 * label - 3.0
        event = torch.tensor([i % 3 != 0])
        cases.append((path, omics, torch.tensor([label]), event))
    model = _model(name, dropout=0.0)

    def total_nll() -> torch.Tensor:
        return sum(nll_surv_loss(model(p, o).hazards, y, e) for p, o, y, e in cases) / len(cases)

    model.eval()
    with torch.no_grad():
        before = total_nll().item()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for step in range(30):
        p, o, y, e = cases[step % len(cases)]
        out = model(p, o)
        opt.zero_grad()
        (nll_surv_loss(out.hazards, y, e) + out.aux_loss).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = total_nll().item()
    assert after < 0.9 * before, (before, after)


# ---------------------------------------------------------------- Nyström attention, PPEG


@pytest.mark.parametrize("n", [16, 64])
def test_nystrom_near_exact_when_landmarks_equal_tokens(n: int) -> None:
    torch.manual_seed(n)
    x = torch.randn(1, n, 32)
    att = NystromAttention(32, heads=4, dim_head=8, num_landmarks=n, residual=False)
    att.eval()
    with torch.no_grad():
        exact = _exact_attention(att, x)
        att.pinv_iterations = 20
        torch.testing.assert_close(att(x), exact, atol=1e-4, rtol=0)
        att.pinv_iterations = 6  # the TransMIL setting: a close but inexact pseudo-inverse
        err = (att(x) - exact).abs().max().item()
    assert 0 < err < 0.05 * exact.abs().max().item()


def test_nystrom_exact_on_block_constant_sequence() -> None:
    """With m blocks of identical tokens the segment-mean landmarks are the tokens: no error."""
    torch.manual_seed(0)
    x = torch.randn(1, 8, 32).repeat_interleave(7, dim=1)  # n = 56 = 8 landmarks × 7
    att = NystromAttention(32, heads=4, dim_head=8, num_landmarks=8, pinv_iterations=20)
    att.res_conv = None
    with torch.no_grad():
        torch.testing.assert_close(att.eval()(x), _exact_attention(att, x), atol=1e-4, rtol=0)
    # ...while on unstructured tokens 8 landmarks only approximate 56 tokens
    y = torch.randn(1, 56, 32)
    with torch.no_grad():
        assert (att(y) - _exact_attention(att, y)).abs().max() > 1e-3


@pytest.mark.parametrize("n", [1, 7, 500])
def test_nystrom_shapes_and_linear_memory_layout(n: int) -> None:
    att = NystromAttention(64, heads=8, dim_head=8, num_landmarks=32).eval()
    x = torch.randn(2, n, 64)
    with torch.no_grad():
        out = att(x)
    assert out.shape == (2, n, 64) and torch.isfinite(out).all()
    # batch elements do not mix (the front zero padding is per sequence)
    with torch.no_grad():
        torch.testing.assert_close(att(x[1:]), out[1:], atol=1e-5, rtol=1e-4)


def test_iterative_pinv_is_a_pseudo_inverse() -> None:
    a = torch.softmax(2 * torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(0)), -1)
    z = iterative_pinv(a, iters=20)
    torch.testing.assert_close(a @ z @ a, a, atol=1e-4, rtol=0)
    torch.testing.assert_close(z @ a @ z, z, atol=1e-3, rtol=1e-3)
    assert (a @ iterative_pinv(a, iters=6) @ a - a).abs().max() < 0.05
    # the start scaling is per batch element, so one case never depends on another
    torch.testing.assert_close(iterative_pinv(a[1:2], iters=6)[0], iterative_pinv(a, iters=6)[1])
    with pytest.raises(ValueError, match="expects"):
        iterative_pinv(a[0])


@pytest.mark.parametrize("n, side", [(1, 1), (7, 3), (500, 23)])
def test_pad_to_square_repeats_first_tokens(n: int, side: int) -> None:
    tokens = torch.arange(n * 2, dtype=torch.float32).view(n, 2)
    padded, s = pad_to_square(tokens)
    assert s == side and padded.shape == (side * side, 2)
    torch.testing.assert_close(padded[:n], tokens)
    torch.testing.assert_close(padded[n:], tokens[: side * side - n])


def test_pad_to_square_side_for_all_small_n() -> None:
    for n in range(1, 3000):
        padded, side = pad_to_square(torch.zeros(n, 1))
        assert side == math.ceil(math.sqrt(n)) and padded.shape[0] == side * side


def test_ppeg_keeps_class_token_and_is_local() -> None:
    torch.manual_seed(0)
    ppeg = PPEG(8)
    x = torch.randn(1, 1 + 5 * 5, 8)
    out = ppeg(x, 5)
    assert out.shape == x.shape
    torch.testing.assert_close(out[:, 0], x[:, 0])
    # a change at grid cell (0, 0) reaches at most 3 cells away (the 7×7 kernel), not (4, 4)
    y = x.clone()
    y[0, 1] += 1.0
    diff = (ppeg(y, 5) - out)[0, 1:].abs().sum(-1).view(5, 5)
    assert diff[3, 3] > 0 and diff[4, 4] == 0 and diff[0, 4] == 0
    with pytest.raises(ValueError, match="PPEG expects"):
        ppeg(x[:, :-1], 5)


def test_transmil_encoder_token_counts() -> None:
    enc = TransMILEncoder(32, ppeg=True).eval()
    cls, tokens = enc(torch.randn(7, 32))
    assert cls.shape == (1, 32) and tokens.shape == (9, 32)
    enc_g = TransMILEncoder(32, ppeg=False).eval()
    cls, tokens = enc_g(torch.randn(6, 32))
    assert cls.shape == (1, 32) and tokens.shape == (6, 32)
    with pytest.raises(ValueError, match="multiple of 8"):
        TransLayer(20)


def test_transmil_uses_patch_order_via_ppeg() -> None:
    """PPEG makes TransMIL position-aware: permuting the bag changes the prediction."""
    model = _model("transmil").eval()
    path, _ = _inputs(49)
    with torch.no_grad():
        a = model(path).logits
        b = model(path[torch.randperm(49, generator=torch.Generator().manual_seed(0))]).logits
    assert not torch.allclose(a, b)


# ---------------------------------------------------------------- MCAT


def test_mcat_uses_both_modalities() -> None:
    model = _model("mcat").eval()
    path, omics = _inputs(40)
    path2, omics2 = _inputs(40, seed=1)
    with torch.no_grad():
        base = model(path, omics).logits
        assert not torch.allclose(base, model(path2, omics).logits)
        assert not torch.allclose(base, model(path, omics2).logits)


@pytest.mark.parametrize("n", [1, 7, 500])
def test_mcat_coattention_weights(n: int) -> None:
    model = _model("mcat").eval()
    assert isinstance(model, MCAT)
    path, omics = _inputs(n)
    with torch.no_grad():
        h_path, h_omic = model.embed(path, omics)
        tokens, weights = model.coattend(h_omic, h_path)
    assert tokens.shape == (len(OMIC_SIZES), model.d)
    assert weights.shape == (len(OMIC_SIZES), n)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(1), torch.ones(len(OMIC_SIZES)))
    # the co-attended tokens are the attention-weighted patch values, then out-projected
    mha = model.coattn
    d = model.d
    v = h_path @ mha.in_proj_weight[2 * d :].T + mha.in_proj_bias[2 * d :]
    expected = mha.out_proj(weights @ v)
    torch.testing.assert_close(tokens, expected, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- DualTrans (CMTA)


def test_dualtrans_aux_loss_alpha() -> None:
    path, omics = _inputs(30)
    model = _model("dualtrans").eval()
    assert isinstance(model, DualTrans) and model.alpha == 0.5  # CMTA's argparse default
    with torch.no_grad():
        out = model(path, omics)
        model.alpha = 1.0
        aux1 = model(path, omics).aux_loss.item()
        model.alpha = 0.0
        out0 = model(path, omics)
    assert out.aux_loss.item() > 0
    assert aux1 == pytest.approx(2 * out.aux_loss.item(), rel=1e-5)
    assert out0.aux_loss.item() == 0.0
    # alpha only weighs the loss; the prediction does not depend on it
    torch.testing.assert_close(out0.logits, out.logits, rtol=0, atol=0)
    assert _model("dualtrans", alpha=0.0).eval()(path, omics).aux_loss.item() == 0.0
    with pytest.raises(ValueError, match="alpha"):
        _model("dualtrans", alpha=-1.0)


def test_dualtrans_aux_target_is_detached() -> None:
    """The L1 term pulls decoder class tokens toward encoder ones, never the other way."""
    model = _model("dualtrans").eval()
    caught: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name in ("path_encoder", "gen_encoder", "path_decoder", "gen_decoder"):
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, name=name: caught.__setitem__(name, out)
        )
    out = model(*_inputs(30))
    enc = [caught["path_encoder"][0], caught["gen_encoder"][0]]
    dec = [caught["path_decoder"][0], caught["gen_decoder"][0]]
    grads_enc = torch.autograd.grad(out.aux_loss, enc, retain_graph=True, allow_unused=True)
    assert all(g is None for g in grads_enc)
    grads_dec = torch.autograd.grad(out.aux_loss, dec, retain_graph=True)
    assert all(g is not None and g.abs().sum() > 0 for g in grads_dec)
    # the encoder class tokens do feed the prediction
    grads_logits = torch.autograd.grad(out.logits.sum(), enc)
    assert all(g.abs().sum() > 0 for g in grads_logits)
    # and the aux value is alpha · (L1 + L1) of those tokens
    expected = model.alpha * sum((d - e).abs().mean() for e, d in zip(enc, dec, strict=True))
    torch.testing.assert_close(out.aux_loss, expected)


def test_dualtrans_uses_both_modalities() -> None:
    model = _model("dualtrans").eval()
    path, omics = _inputs(40)
    path2, omics2 = _inputs(40, seed=1)
    with torch.no_grad():
        base = model(path, omics).logits
        assert not torch.allclose(base, model(path2, omics).logits)
        assert not torch.allclose(base, model(path, omics2).logits)
