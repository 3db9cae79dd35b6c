"""ours' group formation (`grouping`) at real bag sizes: distinct tokens, determinism, old path."""

from __future__ import annotations

import pytest
import torch

from mmsurv.models import create_model
from mmsurv.models.ours import GROUPINGS, Ours, kmeans_labels, segment_attention_pool

torch.set_num_threads(1)

PATH_DIM = 1024
N_PATCHES = 16_384
OMIC_SIZES = [3, 10, 1, 25, 7, 4]


def _bag(
    seed: int = 0, n: int = N_PATCHES, rare: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor]:
    """A bag of 3 common tissue types + a rare phenotype (shifted patches); return bag, is_rare."""
    g = torch.Generator().manual_seed(seed)
    types = 2.0 * torch.randn(4, PATH_DIM, generator=g)  # 3 common + 1 rare centroid
    n_rare = int(rare * n)
    kind = torch.cat([torch.full((n_rare,), 3), torch.randint(0, 3, (n - n_rare,), generator=g)])
    kind = kind[torch.randperm(n, generator=g)]
    return types[kind] + torch.randn(n, PATH_DIM, generator=g), kind == 3


def _omics(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g) for s in OMIC_SIZES]


def _model(grouping: str, name: str = "ours") -> Ours:
    torch.manual_seed(0)
    model = create_model(
        name, n_bins=4, path_dim=PATH_DIM, omic_sizes=OMIC_SIZES, grouping=grouping
    )
    return model.eval()


def _spread(tokens: torch.Tensor, patches: torch.Tensor) -> float:
    """Mean pairwise distance between the tokens over that between (a sample of) patches."""
    sample = patches[:512]
    return float(torch.pdist(tokens).mean() / torch.pdist(sample).mean())


def _old_group_patches(path: torch.Tensor, n_groups: int, training: bool, eval_seed: int = 0):
    """Copy of Ours.group_patches before `grouping` existed (the literal reading)."""
    n, c = path.shape[0], n_groups
    gen = None if training else torch.Generator().manual_seed(eval_seed)
    perm = torch.randperm(n, generator=gen).to(path.device)
    if n < c:
        return path[perm[torch.arange(c, device=path.device) % n]]
    group = torch.empty(n, dtype=torch.long, device=path.device)
    group[perm] = (torch.arange(n, device=path.device) * c) // n
    sums = path.new_zeros(c, path.shape[1]).index_add_(0, group, path)
    counts = torch.bincount(group, minlength=c).to(path.dtype).unsqueeze(1)
    return sums / counts


@pytest.fixture(scope="module")
def bag() -> tuple[torch.Tensor, torch.Tensor]:
    return _bag()


def test_tokens_distinct_at_16k_patches(bag):
    """k-means and (selective) attention tokens spread far more than random group means."""
    path, _ = bag
    spread = {}
    with torch.no_grad():
        for grouping in GROUPINGS:
            model = _model(grouping)
            spread[grouping] = _spread(model.path_tokens(path), model.path_fc(path))
        # random_attn's tokens are as distinct as its attention is selective: sharpen the
        # initial (near-uniform) scores, as training on a rare phenotype does.
        sharp = _model("random_attn")
        sharp.group_attention.attention_c.weight.mul_(200.0)
        spread["random_attn_sharp"] = _spread(sharp.path_tokens(path), sharp.path_fc(path))
    assert spread["random_mean"] < 0.05, spread  # the failure mode: ~identical tokens
    assert spread["kmeans"] > 10 * spread["random_mean"], spread
    assert spread["random_attn_sharp"] > 5 * spread["random_mean"], spread
    # At initialisation attention is near uniform, so its tokens are close to the group means.
    assert spread["random_attn"] < 3 * spread["random_mean"], spread


def test_kmeans_separates_rare_phenotype(bag):
    path, is_rare = bag
    labels, centroids = kmeans_labels(path, 6, generator=torch.Generator().manual_seed(0))
    assert centroids.shape == (6, PATH_DIM)
    rare_cluster = int(torch.bincount(labels[is_rare], minlength=6).argmax())
    in_cluster = labels == rare_cluster
    recall = float((in_cluster & is_rare).sum() / is_rare.sum())
    precision = float((in_cluster & is_rare).sum() / in_cluster.sum())
    assert recall > 0.95 and precision > 0.95, (recall, precision)


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_prediction_deterministic_at_eval(grouping, bag):
    """Same case → same prediction, whatever was evaluated before it."""
    path, _ = bag
    other, _ = _bag(seed=1, n=5000)
    model = _model(grouping)
    with torch.no_grad():
        first = model(path, _omics()).logits
        model(other, _omics(1))
        torch.randn(10)  # global RNG moved on
        again = model(path, _omics()).logits
    assert torch.equal(first, again)
    assert torch.isfinite(first).all()


@pytest.mark.parametrize("training", [False, True])
def test_random_mean_unchanged(training, bag):
    path, _ = bag
    model = _model("random_mean").train(training)
    for n in (N_PATCHES, 4):  # also fewer patches than groups
        torch.manual_seed(7)
        new = model.group_patches(path[:n])
        torch.manual_seed(7)
        old = _old_group_patches(path[:n], 6, training)
        assert torch.equal(new, old)
    assert model.grouping == "random_mean"
    assert not hasattr(model, "group_attention") and not hasattr(model, "group_size_fc")
    with torch.no_grad():
        torch.manual_seed(3)  # same draws (groups, dropout) in training mode
        tokens = model.path_tokens(path)
        torch.manual_seed(3)
        assert torch.equal(tokens, model.path_fc(_old_group_patches(path, 6, training)))


def test_random_attn_gradients_reach_attention(bag):
    path, _ = bag
    model = _model("random_attn").train()
    out = model(path[:4096], _omics())
    (out.logits.sum() + out.aux_loss).backward()
    grads = [p.grad for p in model.group_attention.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(float(g.abs().sum()) > 0 for g in grads)


def test_segment_attention_pool_matches_per_group_softmax():
    g = torch.Generator().manual_seed(0)
    h, scores = torch.randn(50, 8, generator=g), 5 * torch.randn(50, generator=g)
    groups = torch.randint(0, 4, (50,), generator=g)
    pooled, w = segment_attention_pool(h, scores, groups, 4)
    for k in range(4):
        sel = groups == k
        ref = torch.softmax(scores[sel], 0) @ h[sel]
        assert torch.allclose(pooled[k], ref, atol=1e-6)
        assert torch.isclose(w[sel].sum(), torch.tensor(1.0))


def test_kmeans_empty_clusters_and_tiny_bags_give_no_nan():
    model = _model("kmeans")
    duplicates = torch.cat([torch.zeros(20, PATH_DIM), torch.ones(20, PATH_DIM)])
    with torch.no_grad():
        for path in (duplicates, torch.randn(3, PATH_DIM), torch.randn(1, PATH_DIM)):
            tokens = model.path_tokens(path)
            assert tokens.shape == (6, 256) and torch.isfinite(tokens).all()
    labels, _ = kmeans_labels(duplicates, 6)
    assert set(labels.tolist()) <= set(range(6)) and len(set(labels.tolist())) == 2


@pytest.mark.parametrize("name", ["ours", "ours_wo_simme", "ours_wo_bdca", "ours_wo_ot"])
def test_option_reaches_ablations_and_is_checked(name):
    assert _model("kmeans", name).grouping == "kmeans"
    with pytest.raises(ValueError, match="grouping='nope'; choose one of"):
        _model("nope", name)
