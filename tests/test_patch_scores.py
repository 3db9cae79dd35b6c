"""SurvModel.patch_scores of the attention models: panels, and that they are forward's weights."""

from __future__ import annotations

import pytest
import torch
from test_models import OMIC_SIZES, PATH_DIM  # shared inputs (tests/ is on sys.path)

from mmsurv.models import create_model
from mmsurv.models._transmil_layers import NystromAttention

torch.set_num_threads(1)

G = len(OMIC_SIZES)
# Small widths keep the CPU tests fast (as test_models_baselines_m2).
SMALL = {"transmil": {"dim": 64}, "mcat": {"d": 32}, "dualtrans": {"d": 32, "omic_hidden": 64}}
PANEL_ENCODERS = {"attention": "path_encoder", "decoder": "path_decoder"}
# name, constructor kwargs, expected panels, whether each panel is a softmax over the bag
CASES = [
    ("clam_sb", {}, ["attention"], True),
    ("porpoise", {}, ["attention"], True),
    ("transmil", {}, ["attention"], False),
    ("dualtrans", {}, ["attention", "decoder"], False),
    ("mcat", {}, [f"family{g}" for g in range(G)], True),
    ("ours", {}, [f"family{g}" for g in range(G)], True),
    ("ours", {"grouping": "random_attn"}, [f"family{g}" for g in range(G)], True),
    ("ours", {"grouping": "kmeans"}, [f"family{g}" for g in range(G)], True),
    ("ours_wo_simme", {}, [f"family{g}" for g in range(G)], True),
    ("ours_wo_ot", {}, [f"family{g}" for g in range(G)], True),
    ("ours_wo_bdca", {}, [f"family{g}" for g in range(G)], False),
]


def _bag(n: int, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, PATH_DIM, generator=g), [torch.randn(s, generator=g) for s in OMIC_SIZES]


def _model(name: str, **kw):
    torch.manual_seed(0)
    cfg = {**SMALL.get(name, {}), **kw}
    return create_model(name, n_bins=4, path_dim=PATH_DIM, omic_sizes=OMIC_SIZES, **cfg).eval()


def _input_of(module: torch.nn.Module, model, *args) -> torch.Tensor:
    """What `module` receives during one forward of `model` (a forward pre-hook, no mock)."""
    seen: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda _m, inp: seen.append(inp[0].detach()))
    with torch.no_grad():
        model(*args)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize(("name", "kw", "panels", "softmax"), CASES)
@pytest.mark.parametrize("n", [1, 5, 200])  # 5 < C_p = 6: ours' tokens reuse patches
def test_panels_shape_finite_deterministic(name, kw, panels, softmax, n):
    model = _model(name, **kw)
    path, omics = _bag(n)
    scores = model.patch_scores(path, omics)
    assert list(scores) == panels
    for v in scores.values():
        assert v.shape == (n,) and v.dtype == torch.float32 and torch.isfinite(v).all()
        if softmax:
            assert (v >= 0).all()
            torch.testing.assert_close(v.sum(), torch.tensor(1.0), atol=1e-5, rtol=0)
    again = model.patch_scores(path, omics)
    assert all(torch.equal(scores[k], again[k]) for k in scores)
    caption = model.patch_score_caption
    assert isinstance(caption, str) and len(caption) > 40


def test_ours_captions_name_the_quantity_of_each_ablation():
    assert "Cross-attention from the genomics side" in _model("ours").patch_score_caption
    assert "Cross-attention" in _model("ours_wo_ot").patch_score_caption
    assert "transport" in _model("ours_wo_bdca").patch_score_caption
    assert "gated-attention weight" in _model("ours", grouping="random_attn").patch_score_caption
    assert "k-means cluster" in _model("ours", grouping="kmeans").patch_score_caption
    neither = _model("ours", use_bdca=False, use_ot=False)
    assert list(neither.patch_scores(*_bag(12))) == ["attention"]


def test_attention_pooling_models_return_the_weights_forward_pools_with():
    path, omics = _bag(64)
    clam = _model("clam_sb")
    pooled = _input_of(clam.classifier, clam, path, omics)
    with torch.no_grad():
        torch.testing.assert_close(clam.patch_scores(path)["attention"] @ clam.fc(path), pooled[0])
    por = _model("porpoise")
    pooled = _input_of(por.rho, por, path, omics)
    with torch.no_grad():
        w = por.patch_scores(path, omics)["attention"]
        torch.testing.assert_close(w @ por.path_fc(path), pooled[0])


def test_mcat_family_panels_are_the_coattention_forward_uses():
    path, omics = _bag(64)
    model = _model("mcat")
    h_coattn = _input_of(model.path_head, model, path, omics)  # (G, d): what the head reads
    scores = model.patch_scores(path, omics)
    w = torch.stack([scores[f"family{g}"] for g in range(G)])  # (G, N)
    att, d = model.coattn, model.d
    with torch.no_grad():
        v = model.wsi_net(path) @ att.in_proj_weight[2 * d :].T + att.in_proj_bias[2 * d :]
        torch.testing.assert_close(att.out_proj(w @ v), h_coattn, atol=1e-5, rtol=1e-4)
    # each family attends differently
    assert (w[0] - w[1]).abs().max() > 1e-4


@pytest.mark.parametrize(
    ("name", "grouping", "hooked"),
    [
        ("ours", "random_mean", "omic_agg"),  # B^{gp}: family queries over the group tokens
        ("ours", "random_attn", "omic_agg"),
        ("ours_wo_bdca", "random_mean", "path_agg"),  # B̂^{pg}: the transported group tokens
        ("ours_wo_bdca", "random_attn", "path_agg"),
    ],
)
def test_ours_family_panels_are_the_weights_patches_enter_family_tokens_with(
    name, grouping, hooked
):
    """Σ_n score_g(n) · patch_n equals family g's mix of the group tokens' sources.

    The (G, C_p) family-by-token weights T are recovered from the hooked aggregator input by
    least squares (C_p = 6 tokens of width 256 are independent); with BDCA that input is
    T · v_p(B^p), without it T · B^p. The panels must then put T[g, c] times the patch's weight
    in group c on each patch: for random_mean, Σ_n s_g(n) x_n = T · (group means); for
    random_attn, Σ_n s_g(n) path_fc(x_n) = T · B^p.
    """
    path, omics = _bag(300)
    model = _model(name, grouping=grouping)
    mixed = _input_of(getattr(model, hooked), model, path, omics)  # (G, d)
    with torch.no_grad():
        tokens = model.path_tokens(path)  # (C_p, d), deterministic in eval mode
        sources = model.v_p(tokens) if model.use_bdca else tokens
        t = torch.linalg.lstsq(sources.T.double(), mixed.T.double()).solution.T.float()  # (G, C_p)
        torch.testing.assert_close(t @ sources, mixed, atol=1e-4, rtol=1e-4)
        scores = model.patch_scores(path, omics)
        s = torch.stack([scores[f"family{g}"] for g in range(G)])  # (G, N)
        if grouping == "random_mean":
            lhs, rhs = s @ path, t @ model.group_patches(path)
        else:
            lhs, rhs = s @ model.path_fc(path), t @ tokens
    torch.testing.assert_close(lhs, rhs, atol=1e-4, rtol=1e-3)
    if model.use_bdca:  # softmax over tokens: a panel sums to 1
        torch.testing.assert_close(t.sum(1), torch.ones(G), atol=1e-4, rtol=0)


def test_nystrom_attention_row_is_what_forward_applies_to_the_values():
    """The returned row, times V, is forward's output at that token (before the residual conv)."""
    torch.manual_seed(0)
    att = NystromAttention(32, heads=4, dim_head=8, num_landmarks=8, residual=False).eval()
    x = torch.randn(1, 45, 32)  # 45 tokens: 3 zero pads in front to reach 6 segments of 8
    with torch.no_grad():
        out, row = att.attend(x, query=3)
        assert row is not None and row.shape == (1, 4, 45)
        v = att.to_qkv(x).view(1, 45, 3, 4, 8)[:, :, 2].transpose(1, 2)  # (1, h, n, d_h)
        mixed = (row.unsqueeze(2) @ v).squeeze(2).reshape(1, 32)  # heads concatenated
        torch.testing.assert_close(att.to_out(mixed), out[:, 3], atol=1e-5, rtol=1e-4)
        # with as many landmarks as tokens (and an exact pinv) the row is the exact softmax row
        exact_att = NystromAttention(32, heads=4, dim_head=8, num_landmarks=16, residual=False)
        exact_att.pinv_iterations = 20
        y = torch.randn(1, 16, 32)
        _, row = exact_att.eval().attend(y, query=0)
        q, k, _ = exact_att.to_qkv(y).view(1, 16, 3, 4, 8).permute(2, 0, 3, 1, 4).unbind(0)
        exact = torch.softmax(q[:, :, :1] @ k.transpose(-1, -2) * exact_att.scale, -1)
        torch.testing.assert_close(row, exact.squeeze(2), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("name", "encoders", "pinv_iterations", "atol"),
    [
        ("transmil", {"attention": "encoder"}, 30, 2e-4),
        # DualTrans' Xavier init makes its first attention near uniform, so the landmark matrix
        # is nearly singular and the iterative pinv stays ~2 % off (more iterations diverge in
        # float32); 2e-3 is still > 10x below what a wrong patch order gives (weights 0.014-0.048).
        ("dualtrans", PANEL_ENCODERS, 6, 2e-3),
    ],
)
def test_class_token_panels_are_the_last_layers_attention_in_bag_order(
    name, encoders, pinv_iterations, atol
):
    """With as many landmarks as tokens the Nyström row is exact: compare with full softmax.

    40 patches → a 7 × 7 grid of 49 tokens (the first 9 patches copied) + the class token = 50
    = the landmarks, so the panels must equal the class token's softmax attention in the last
    layer (computed here from that layer's real input), head-averaged, copies added back.
    """
    n, m = 40, 50
    path, omics = _bag(n)
    model = _model(name, num_landmarks=m)
    for encoder_name in encoders.values():
        getattr(model, encoder_name).layer2.attn.pinv_iterations = pinv_iterations
    scores = model.patch_scores(path, omics)
    assert list(scores) == list(encoders)
    for panel, encoder_name in encoders.items():
        att = getattr(model, encoder_name).layer2.attn
        x = _input_of(att.to_qkv, model, path, omics)  # (1, 50, dim): the class token first
        q, k, _ = att.to_qkv(x).view(1, m, 3, att.heads, att.dim_head).permute(2, 0, 3, 1, 4)
        with torch.no_grad():
            row = torch.softmax(q[:, :, :1] @ k.transpose(-1, -2) * att.scale, -1)[0, :, 0]
        tokens = row.mean(0)[1:]  # (49,) over the grid tokens
        expected = tokens[:n].clone()
        expected[:9] += tokens[n:]
        got = scores[panel]
        torch.testing.assert_close(got, expected, atol=atol, rtol=0)
        assert (got[:9].mean() > 1.5 * got[9:].mean()).item()  # copied patches: two tokens each


@pytest.mark.parametrize(("name", "kw"), [("transmil", {"dim": 32}), ("ours", {"d": 64})])
def test_16k_patch_bag(name, kw):
    """A real-size bag: linear memory (Nyström; grouped tokens), panels in bag order."""
    path, omics = _bag(16_384)
    model = _model(name, **kw)
    scores = model.patch_scores(path, omics)
    for v in scores.values():
        assert v.shape == (16_384,) and torch.isfinite(v).all()
    total = sum(float(v.sum()) for v in scores.values()) / len(scores)
    assert 0.9 < total < 1.01
