"""Baselines SNNTrans, CLAM-SB, PORPOISE and HFBSurv: contract, CLAM's instance loss, fusions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_models import (  # shared inputs (tests/ is on sys.path)
    OMIC_SIZES,
    PATH_DIM,
    _inputs,
    _model,
)

# Imported explicitly: they register the models (mmsurv.models.__init__ may not import them yet).
import mmsurv.models.clam_sb
import mmsurv.models.hfbsurv
import mmsurv.models.porpoise
import mmsurv.models.snn_trans  # noqa: F401
from mmsurv.model_catalog import MODEL_INPUTS
from mmsurv.models import model_class, model_modalities
from mmsurv.models.clam_sb import CLAMSB, smooth_top1_svm_loss
from mmsurv.models.hfbsurv import HFBSurv, mfb_pool
from mmsurv.models.porpoise import Porpoise
from mmsurv.models.snn_trans import SNNTrans
from mmsurv.training.losses import nll_surv_loss

torch.set_num_threads(1)

MODELS = ["snn_trans", "clam_sb", "porpoise", "hfbsurv"]
PATH_MODELS = [m for m in MODELS if "path" in MODEL_INPUTS[m]]
# The first layer each modality enters through: its gradient must be non-zero.
INPUT_LAYERS = {
    "snn_trans": [f"sig_networks.{i}.0.0.weight" for i in range(len(OMIC_SIZES))],
    "clam_sb": ["fc.0.weight"],
    "porpoise": ["path_fc.1.weight", "fc_omic.0.0.weight"],
    "hfbsurv": ["path_fc.0.weight", "fc_omic.0.0.weight"],
}


def _run(model, name: str, path, omics, label: torch.Tensor | None = None):
    mods = model_modalities(name)
    args = (path if "path" in mods else None, omics if "omic" in mods else None)
    return model(*args, label=label) if label is not None else model(*args)


def test_registered_with_catalog_modalities() -> None:
    classes = {"snn_trans": SNNTrans, "clam_sb": CLAMSB, "porpoise": Porpoise, "hfbsurv": HFBSurv}
    for name, cls in classes.items():
        assert model_class(name) is cls
        assert model_modalities(name) == MODEL_INPUTS[name]
        assert isinstance(_model(name), cls)
        assert _model(name).dropout == 0.25


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("n_patches", [1, 7, 500])
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name: str, n_patches: int, train: bool) -> None:
    model = _model(name).train(train)
    path, omics = _inputs(n_patches)
    label = torch.tensor([2]) if name == "clam_sb" else None
    out = _run(model, name, path, omics, label)
    assert out.logits.shape == out.hazards.shape == out.surv.shape == (1, 4)
    assert out.aux_loss.ndim == 0
    for t in (out.logits, out.hazards, out.surv, out.aux_loss):
        assert torch.isfinite(t).all()
    assert ((out.hazards > 0) & (out.hazards < 1)).all()
    assert (out.surv[:, 1:] <= out.surv[:, :-1]).all()
    (out.hazards.sum() + out.aux_loss).backward()

    grads = {n: p.grad for n, p in model.named_parameters()}
    inst_used = name == "clam_sb" and train and n_patches >= 2
    for n, g in grads.items():
        if n.startswith("instance_classifiers."):
            # only the label's instance head is trained, and only with >= 2 patches
            assert (g is not None) == (inst_used and n.startswith("instance_classifiers.2.")), n
            continue
        if n.startswith("missing_"):  # missing-modality tokens: used only when one is withheld
            continue
        assert g is not None, f"{name}: no gradient reached {n}"
        assert torch.isfinite(g).all(), n
    for n in INPUT_LAYERS[name]:
        assert grads[n].abs().sum() > 0, f"{name}: zero gradient at input layer {n}"


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_deterministic(name: str) -> None:
    model = _model(name).eval()
    path, omics = _inputs(50)
    with torch.no_grad():
        a, b = _run(model, name, path, omics), _run(model, name, path, omics)
    torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=0)
    # ...while dropout makes training passes differ
    model.train()
    with torch.no_grad():
        c, d = _run(model, name, path, omics), _run(model, name, path, omics)
    assert not torch.equal(c.logits, d.logits)


@pytest.mark.parametrize("name", PATH_MODELS)
def test_100k_patch_bag_in_eval(name: str) -> None:
    model = _model(name).eval()
    path, omics = _inputs(100_000)
    with torch.no_grad():
        out = _run(model, name, path, omics)
    assert out.hazards.shape == (1, 4) and torch.isfinite(out.logits).all()


# --- SNNTrans -------------------------------------------------------------------------------


def test_snn_trans_architecture_and_every_family_matters() -> None:
    model = _model("snn_trans").eval()
    assert len(model.sig_networks) == 6
    layer = model.head.transformer.layers[0]
    assert len(model.head.transformer.layers) == 2
    assert layer.self_attn.num_heads == 8 and layer.self_attn.embed_dim == 256
    _, omics = _inputs(1)
    with torch.no_grad():
        base = model(None, omics).logits
        for i in range(len(omics)):
            changed = [o + 1.0 if j == i else o for j, o in enumerate(omics)]
            assert not torch.allclose(model(None, changed).logits, base), f"family {i} ignored"


# --- CLAM-SB --------------------------------------------------------------------------------


def test_smooth_svm_loss_values() -> None:
    # smooth regime: tau·logsumexp(s + margin − s_y) = log(e + 1) for equal scores
    loss = smooth_top1_svm_loss(torch.zeros(1, 2), torch.tensor([1]))
    assert loss.item() == pytest.approx(math.log(math.e + 1))
    # a lead of 10 > log(1000) switches to the hard hinge: 0 if right, 10 + 1 if wrong
    logits = torch.tensor([[10.0, 0.0], [10.0, 0.0]])
    assert smooth_top1_svm_loss(logits, torch.tensor([0, 1])).item() == pytest.approx(11 / 2)
    logits = torch.tensor([[0.5, -0.5]], requires_grad=True)
    smooth_top1_svm_loss(logits, torch.tensor([0])).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="targets"):
        smooth_top1_svm_loss(torch.zeros(3, 2), torch.tensor([0, 1]))


def test_clam_instance_loss_only_in_training_with_label() -> None:
    model = _model("clam_sb")
    path, _ = _inputs(40)
    label = torch.tensor([1])
    assert model.train()(path).aux_loss.item() == 0.0  # no label
    assert model.eval()(path, label=label).aux_loss.item() == 0.0  # evaluation ignores labels
    assert model.train()(path, label=label).aux_loss.item() > 0
    assert model.train()(path[:1], label=label).aux_loss.item() == 0.0  # one patch: skipped
    with pytest.raises(ValueError, match="bin index"):
        model.train()(path, label=torch.tensor([4]))


def test_clam_instance_loss_picks_top_and_bottom_patches_and_scales() -> None:
    model = _model("clam_sb", dropout=0.0).train()  # no dropout: repeatable training passes
    seen: list[torch.Tensor] = []
    for head in model.instance_classifiers:
        head.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].detach()))
    for n, k in [(7, 3), (500, 8), (2, 1)]:
        seen.clear()
        path, _ = _inputs(n, seed=n)
        out = model(path, label=torch.tensor([3]))
        assert len(seen) == 1 and seen[0].shape == (2 * k, 512)
        h = model.fc(path)
        _, weights = model.attention(h)
        # rows = the k most attended patches, then the k least attended ones
        rows = torch.cdist(seen[0], h.detach()).argmin(dim=1)
        top, bottom = rows[:k], rows[k:]
        assert weights[top].min() >= weights[bottom].max()
        assert set(top.tolist()) == set(torch.topk(weights, k).indices.tolist())
        inst = model.instance_loss(h, weights, 3)
        torch.testing.assert_close(out.aux_loss, inst * 0.3 / 0.7)

    path, _ = _inputs(60)
    a = model(path, label=torch.tensor([0])).aux_loss
    b = model(path, label=torch.tensor([2])).aux_loss
    assert a.item() != pytest.approx(b.item())  # another label → another instance head

    half = _model("clam_sb", dropout=0.0, bag_weight=0.5).train()
    h = half.fc(path)
    _, w = half.attention(h)
    torch.testing.assert_close(
        half(path, label=torch.tensor([0])).aux_loss, half.instance_loss(h, w, 0)
    )


def test_clam_ce_instance_loss_option() -> None:
    svm = _model("clam_sb", dropout=0.0, bag_weight=0.5).train()
    ce = _model("clam_sb", dropout=0.0, bag_weight=0.5, inst_loss="ce").train()
    path, _ = _inputs(30)
    h = ce.fc(path)
    _, w = ce.attention(h)
    order = torch.argsort(w, descending=True)
    idx = torch.cat([order[:8], order[-8:]])
    target = torch.tensor([1] * 8 + [0] * 8)
    expected = F.cross_entropy(ce.instance_classifiers[1](h[idx]), target)
    torch.testing.assert_close(ce(path, label=torch.tensor([1])).aux_loss, expected)
    assert svm(path, label=torch.tensor([1])).aux_loss.item() != pytest.approx(expected.item())
    with pytest.raises(ValueError, match="inst_loss"):
        _model("clam_sb", inst_loss="hinge")
    with pytest.raises(ValueError, match="bag_weight"):
        _model("clam_sb", bag_weight=0.0)


# --- PORPOISE -------------------------------------------------------------------------------


def test_porpoise_kronecker_fusion_dims() -> None:
    model = _model("porpoise").eval()
    fusion = model.fusion
    assert fusion.reduced_dims == (32, 32) and fusion.kron_dim == 33 * 33
    assert fusion.encoder1[0].in_features == 1089
    assert fusion.encoder2[0].in_features == 256 + 256 + 256  # skip: fused + both vectors
    seen: list[tuple[int, ...]] = []
    fusion.encoder1.register_forward_pre_hook(lambda _m, inp: seen.append(tuple(inp[0].shape)))
    path, omics = _inputs(9)
    with torch.no_grad():
        model(path, omics)
        h_path, h_omic = model.embed(path, omics)
        kron = fusion.kronecker(h_path, h_omic).view(33, 33)
    assert seen == [(1, 1089)]
    # [o1, 1] ⊗ [o2, 1]: the appended 1 keeps both unimodal vectors and a constant
    assert kron[-1, -1].item() == 1.0
    torch.testing.assert_close(kron, torch.outer(kron[:, -1], kron[-1, :]))
    assert kron[:-1, -1].abs().sum() > 0 and kron[-1, :-1].abs().sum() > 0


def test_porpoise_without_skip_changes_encoder2() -> None:
    model = _model("porpoise", skip=False)
    assert model.fusion.encoder2[0].in_features == 256


# --- HFBSurv --------------------------------------------------------------------------------


def test_mfb_pool_sums_groups_then_normalises() -> None:
    k, o = 3, 4
    out = mfb_pool(torch.ones(1, k * o), torch.ones(1, k * o), o)
    torch.testing.assert_close(out, torch.full((1, o), 0.5))  # √3 each, then / ‖·‖
    x = torch.tensor([[1.0, 2.0, -4.0, -5.0]])  # k = 2, o = 2: groups (1·1 + 2·1), (−4 − 5)
    z = mfb_pool(x, torch.ones(1, 4), 2)
    expected = torch.tensor([[math.sqrt(3), -3.0]]) / math.sqrt(3 + 9)
    torch.testing.assert_close(z, expected)
    # zeros in the pooled vector keep finite gradients (√ at 0)
    a = torch.zeros(1, 4, requires_grad=True)
    mfb_pool(a, torch.tensor([[1.0, 1.0, 1.0, 2.0]]), 2).sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()
    with pytest.raises(ValueError, match="mfb_pool"):
        mfb_pool(torch.ones(1, 5), torch.ones(1, 5), 2)


def test_hfbsurv_hierarchy_dims() -> None:
    model = _model("hfbsurv").eval()
    assert model.intra_path.out_features == model.intra_omic.out_features == 20 * 20
    assert model.inter_path.in_features == 256 + 20 and model.inter_path.out_features == 400
    path, omics = _inputs(11)
    with torch.no_grad():
        fused = model.fuse(*model.embed(path, omics))
    assert fused.shape == (1, 256 + 20 + 20)


@pytest.mark.parametrize("name", ["porpoise", "hfbsurv"])
def test_fusion_models_use_both_modalities(name: str) -> None:
    model = _model(name).eval()
    path, omics = _inputs(20)
    with torch.no_grad():
        base = model(path, omics).logits
        other_omics = model(path, [o + 1.0 for o in omics]).logits
        other_path = model(path + 1.0, omics).logits
    assert not torch.allclose(base, other_omics, atol=1e-6)
    assert not torch.allclose(base, other_path, atol=1e-6)


# --- learning -------------------------------------------------------------------------------


def _synthetic_cohort(n: int = 32, n_patches: int = 8):
    """Cases whose time bin is the quartile of a latent z carried by both modalities."""
    g = torch.Generator().manual_seed(7)
    z = torch.randn(n, generator=g)
    labels = torch.bucketize(z, torch.quantile(z, torch.tensor([0.25, 0.5, 0.75])))
    events = torch.rand(n, generator=g) < 0.75
    cases = []
    for i in range(n):
        path = 0.5 * torch.randn(n_patches, PATH_DIM, generator=g)
        path[:, 0] += 2.0 * z[i]
        omics = [0.5 * torch.randn(s, generator=g) for s in OMIC_SIZES]
        omics[0] = omics[0] + 2.0 * z[i]
        cases.append((path, omics))
    return cases, labels, events


@pytest.mark.parametrize("name", MODELS)
def test_learns_synthetic_risk(name: str) -> None:
    cases, labels, events = _synthetic_cohort()
    model = _model(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def evaluate() -> tuple[float, float]:
        """Mean NLL, and the fraction of pairs with different bins ordered right by risk."""
        model.eval()
        with torch.no_grad():
            outs = [_run(model, name, p, o) for p, o in cases]
        nll = torch.stack(
            [
                nll_surv_loss(o.hazards, labels[i : i + 1], events[i : i + 1])
                for i, o in enumerate(outs)
            ]
        ).mean()
        risk = torch.stack([-o.surv.sum() for o in outs])
        later = labels[:, None] > labels[None, :]  # i survives into a later bin than j
        return float(nll), float((risk[:, None] < risk[None, :])[later].float().mean())

    before, _ = evaluate()
    g = torch.Generator().manual_seed(1)
    for _ in range(30):
        model.train()
        opt.zero_grad()
        batch = torch.randperm(len(cases), generator=g)[:4].tolist()
        loss = torch.zeros(())
        for i in batch:
            path, omics = cases[i]
            y = labels[i : i + 1]
            out = _run(model, name, path, omics, y if name == "clam_sb" else None)
            loss = loss + nll_surv_loss(out.hazards, y, events[i : i + 1]) + out.aux_loss
        (loss / len(batch)).backward()
        opt.step()
    after, concordance = evaluate()
    assert after < 0.85 * before, f"{name}: NLL {before:.3f} → {after:.3f}"
    # not just the marginal bin distribution: the risk ranks the cases by the latent z
    assert concordance > 0.8, f"{name}: concordance {concordance:.2f}"
