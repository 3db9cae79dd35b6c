"""mmsurv.models: every registered model runs forward/backward; the paper model's parts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmsurv.models import create_model, list_models, model_modalities, register_model
from mmsurv.models.ours import Ours, ot_plan, sinkhorn_unbalanced

torch.set_num_threads(1)

PATH_DIM = 32
OMIC_SIZES = [3, 10, 1, 25, 7, 4]  # six families of different sizes


def _inputs(n_patches: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    path = torch.randn(n_patches, PATH_DIM, generator=g)
    omics = [torch.randn(s, generator=g) for s in OMIC_SIZES]
    return path, omics


def _model(name: str, **kw):
    torch.manual_seed(0)
    return create_model(name, n_bins=4, path_dim=PATH_DIM, omic_sizes=OMIC_SIZES, **kw)


def test_registry_lists_models():
    names = list_models()
    for n in ("snn", "attn_mil", "ours", "ours_wo_simme", "ours_wo_bdca", "ours_wo_ot"):
        assert n in names
    assert model_modalities("snn") == frozenset({"omic"})
    assert model_modalities("attn_mil") == frozenset({"path"})
    assert model_modalities("ours") == frozenset({"path", "omic"})


def test_unknown_model_lists_registered():
    with pytest.raises(ValueError, match="Unknown model 'nope'.*attn_mil.*snn"):
        create_model("nope")
    with pytest.raises(ValueError, match="Unknown model"):
        model_modalities("nope")


def test_duplicate_registration_warns():
    from mmsurv.models import snn as snn_module

    with pytest.warns(UserWarning, match="Overwriting snn"):
        register_model(snn_module.snn)


@pytest.mark.parametrize("model_name", list_models())
@pytest.mark.parametrize("n_patches", [1, 7, 500])
def test_forward_backward(model_name, n_patches):
    model = _model(model_name)
    mods = model_modalities(model_name)
    path, omics = _inputs(n_patches)
    out = model(path if "path" in mods else None, omics if "omic" in mods else None)
    assert out.logits.shape == out.hazards.shape == out.surv.shape == (1, 4)
    assert out.aux_loss.ndim == 0
    for t in (out.logits, out.hazards, out.surv, out.aux_loss):
        assert torch.isfinite(t).all()
    assert ((out.hazards > 0) & (out.hazards < 1)).all()
    assert (out.surv[:, 1:] <= out.surv[:, :-1]).all()
    (out.hazards.sum() + out.aux_loss).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


@pytest.mark.parametrize("model_name", list_models())
def test_eval_is_deterministic_and_inputs_validated(model_name):
    model = _model(model_name).eval()
    mods = model_modalities(model_name)
    path, omics = _inputs(50)
    args = (path if "path" in mods else None, omics if "omic" in mods else None)
    with torch.no_grad():
        a, b = model(*args), model(*args)
    torch.testing.assert_close(a.hazards, b.hazards)
    if mods == {"path", "omic"}:  # one modality may be withheld (tests/test_missing_modality.py)
        with pytest.raises(ValueError, match="got neither"):
            model(None, None)
    if "path" in mods:
        if mods == {"path"}:
            with pytest.raises(ValueError, match="needs a pathology bag"):
                model(None, omics)
        with pytest.raises(ValueError, match="empty pathology bag"):
            model(path[:0], omics)
        with pytest.raises(ValueError, match=rf"\(N, {PATH_DIM}\)"):
            model(torch.randn(5, PATH_DIM + 1), omics)
    if "omic" in mods:
        if mods == {"omic"}:
            with pytest.raises(ValueError, match="needs omics"):
                model(path, None)
        with pytest.raises(ValueError, match="omic_sizes"):
            model(path, omics[:-1] + [torch.randn(99)])


@pytest.mark.parametrize("n", [1, 6, 13])
def test_ot_plan_balanced_marginals(n):
    g = torch.Generator().manual_seed(n)
    x, y = torch.randn(n, 16, generator=g), torch.randn(6, 16, generator=g)
    plan = ot_plan(x, y, reg=0.05, unbalanced=False)
    assert plan.shape == (n, 6) and (plan >= 0).all()
    torch.testing.assert_close(plan.sum(1), torch.full((n,), 1 / n), atol=1e-5, rtol=0)
    torch.testing.assert_close(plan.sum(0), torch.full((6,), 1 / 6), atol=1e-5, rtol=0)
    unb = ot_plan(x, y, reg=0.05, reg_m=0.5, unbalanced=True)
    assert unb.shape == (n, 6) and torch.isfinite(unb).all() and 0 < unb.sum() <= 1 + 1e-6


@pytest.mark.parametrize("shape", [(6, 6), (1, 6), (13, 7), (6, 40)])
@pytest.mark.parametrize(("reg", "reg_m"), [(0.05, 0.5), (0.1, 1.0), (0.01, 5.0), (0.05, np.inf)])
def test_sinkhorn_unbalanced_equals_pots(shape, reg, reg_m):
    import ot

    rng = np.random.default_rng(sum(shape))
    cost = rng.random(shape) ** 2
    a, b = np.full(shape[0], 1 / shape[0]), np.full(shape[1], 1 / shape[1])
    ours = sinkhorn_unbalanced(a, b, cost, reg=reg, reg_m=reg_m)
    pot = ot.unbalanced.sinkhorn_knopp_unbalanced(a, b, cost, reg=reg, reg_m=reg_m)
    np.testing.assert_allclose(ours, pot, rtol=1e-12, atol=1e-300)


def test_sinkhorn_unbalanced_keeps_the_last_good_iterate_like_pot():
    import ot

    cost = np.array([[1.0, 1.0], [0.0, 0.5]])  # exp(-1/1e-3) = 0: row 0 of the kernel vanishes
    a = b = np.array([0.5, 0.5])
    with pytest.warns(UserWarning, match="Numerical errors"):
        ours = sinkhorn_unbalanced(a, b, cost, reg=1e-3, reg_m=0.5)
    with pytest.warns(UserWarning, match="Numerical errors"):
        pot = ot.unbalanced.sinkhorn_knopp_unbalanced(a, b, cost, reg=1e-3, reg_m=0.5)
    np.testing.assert_array_equal(ours, pot)
    assert np.isfinite(ours).all()


def test_ot_plan_is_constant_for_autograd():
    x = torch.randn(6, 8, requires_grad=True)
    plan = ot_plan(x, torch.randn(6, 8))
    assert not plan.requires_grad


def test_group_patches_fewer_patches_than_groups_and_means():
    model = _model("ours").eval()
    assert model.n_groups == len(OMIC_SIZES)
    one = torch.randn(1, PATH_DIM)
    torch.testing.assert_close(model.group_patches(one), one.expand(6, -1))
    bag = torch.randn(500, PATH_DIM)
    groups = model.group_patches(bag)
    assert groups.shape == (6, PATH_DIM)
    # means of a partition: their size-weighted average is the bag mean (sizes 83/84 here)
    torch.testing.assert_close(groups.mean(0), bag.mean(0), atol=1e-2, rtol=0)


def test_ablations_differ_from_ours():
    path, omics = _inputs(30)
    full = _model("ours").eval()  # eval: fixed grouping, no dropout
    names_full = set(dict(full.named_parameters()))
    # w/o BDCA: the Q/K/V maps are gone
    names_bdca = set(dict(_model("ours_wo_bdca").named_parameters()))
    assert {n.split(".")[0] for n in names_full - names_bdca} == {
        "q_p",
        "k_p",
        "v_p",
        "q_g",
        "k_g",
        "v_g",
    }
    # w/o SimMe: no auxiliary loss; with SimMe it is lambda_sim · (1 − cos) ∈ (0, 2]
    assert _model("ours_wo_simme").eval()(path, omics).aux_loss.item() == 0.0
    aux = full(path, omics).aux_loss.item()
    assert 0 < aux <= 2
    assert _model("ours", lambda_sim=0.5).eval()(path, omics).aux_loss.item() == pytest.approx(
        aux / 2
    )
    # w/o OT: same parameters, different output with the same weights
    wo_ot = _model("ours_wo_ot").eval()
    assert set(dict(wo_ot.named_parameters())) == names_full
    wo_ot.load_state_dict(full.state_dict())
    with torch.no_grad():
        assert not torch.allclose(full(path, omics).logits, wo_ot(path, omics).logits)
    for name in ("ours_wo_simme", "ours_wo_bdca", "ours_wo_ot"):
        assert isinstance(_model(name), Ours)
    with pytest.raises(ValueError, match="use_ot=False"):
        create_model("ours_wo_ot", omic_sizes=OMIC_SIZES, use_ot=True)


def test_registry_catalog_and_config_schema_agree() -> None:
    """The parse-time catalog, the registry and the schema's model enum name the same models."""
    from pathlib import Path

    import yaml

    from mmsurv.model_catalog import MODEL_INPUTS

    schema_path = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    enum = schema["properties"]["training"]["properties"]["models"]["items"]["enum"]
    from mmsurv.models import list_floors

    # deep models and linear floors together (the floors are not torch modules)
    assert sorted(enum) == sorted(list_models() + list_floors()) == sorted(MODEL_INPUTS)
    for name in list_models() + list_floors():
        assert model_modalities(name) == MODEL_INPUTS[name]


# Fewer Nystrom landmarks (same architecture) keep the learning test fast on a CPU.
FAST_KWARGS = {"transmil": {"num_landmarks": 16}, "dualtrans": {"num_landmarks": 16}}


def _learnable_task(n_cases: int = 24, seed: int = 0):
    """Cases whose time bin is carried by both the bag (a shifted feature) and the omics."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_cases) % 4
    cases = []
    for lab in labels.tolist():
        path = torch.randn(8, PATH_DIM, generator=g)
        path[:, :4] += 1.5 * (lab - 1.5)
        omics = [torch.randn(s, generator=g) for s in OMIC_SIZES]
        omics[3][:5] += 1.5 * (lab - 1.5)
        cases.append((path, omics, torch.tensor([lab]), torch.tensor([lab != 3])))
    return cases


def _mean_nll(model, cases, mods) -> float:
    from mmsurv.training.losses import nll_surv_loss

    model.eval()
    with torch.no_grad():
        losses = [
            nll_surv_loss(
                model(p if "path" in mods else None, o if "omic" in mods else None).hazards, y, e
            )
            for p, o, y, e in cases
        ]
    return float(torch.stack(losses).mean())


@pytest.mark.parametrize("model_name", list_models())
def test_loss_decreases_on_a_learnable_task(model_name):
    """Each model fits a small task where both modalities carry the time bin (20 Adam steps)."""
    import inspect

    from mmsurv.training.losses import nll_surv_loss

    torch.manual_seed(0)
    model = _model(model_name, **FAST_KWARGS.get(model_name, {}))
    mods = model_modalities(model_name)
    cases = _learnable_task()
    before = _mean_nll(model, cases, mods)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    takes_label = "label" in inspect.signature(model.forward).parameters
    for _ in range(20):
        model.train()
        opt.zero_grad()
        loss = torch.zeros(())
        for p, o, y, e in cases[:4]:
            args = (p if "path" in mods else None, o if "omic" in mods else None)
            out = model(*args, label=y) if takes_label else model(*args)
            loss = loss + nll_surv_loss(out.hazards, y, e) + out.aux_loss
        (loss / 4).backward()
        opt.step()
        cases = cases[4:] + cases[:4]  # next mini-batch of 4 cases
    after = _mean_nll(model, _learnable_task(), mods)
    assert after < 0.9 * before, f"{model_name}: mean NLL {before:.3f} -> {after:.3f}"


def _leaf_outputs(model, names, path, omics) -> dict[str, list[torch.Tensor]]:
    """Eval-mode outputs of the named sub-modules on one forward pass."""
    seen: dict[str, list[torch.Tensor]] = {}

    def hook(name):
        def keep(_module, _inp, out):
            outs = out if isinstance(out, tuple) else (out,)
            seen[name] = [o.detach().clone() for o in outs if isinstance(o, torch.Tensor)]

        return keep

    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            model(path, omics)
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize("model_name", list_models())
def test_omic_parameters_are_the_genomics_branch(model_name):
    """l1_scope omic: omics-only models give all parameters; path-only ones refuse; multimodal
    ones give a proper subset whose modules' outputs do not change with the pathology input."""
    model = _model(model_name).eval()
    mods = model_modalities(model_name)
    every = list(model.parameters())
    if "omic" not in mods:
        with pytest.raises(ValueError, match="reads no omics"):
            model.omic_parameters()
        return
    omic = model.omic_parameters()
    ids = {id(q) for q in omic}
    assert len(ids) == len(omic) and ids <= {id(q) for q in every}
    if "path" not in mods:  # omics only (snn_clinical: its clinical block is an omics block)
        assert len(omic) == len(every)
        return
    assert 0 < len(omic) < len(every)
    # Every module that owns omic parameters sees omics-derived tensors only.
    names = [
        n
        for n, m in model.named_modules()
        if any(True for _ in m.parameters(recurse=False))
        and all(id(q) in ids for q in m.parameters(recurse=False))
    ]
    owned = {id(q) for n in names for q in model.get_submodule(n).parameters(recurse=False)}
    assert owned == ids  # no omic parameter sits in a module that also holds others
    path, omics = _inputs(50, seed=0)
    other_path, _ = _inputs(50, seed=1)
    a = _leaf_outputs(model, names, path, omics)
    b = _leaf_outputs(model, names, other_path, omics)
    # (an attention's out_proj is applied functionally by its parent, which is checked)
    assert a and set(a) == set(b) <= set(names)
    for n in a:
        for x, y in zip(a[n], b[n], strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=f"{model_name}.{n} sees pathology")


def test_concat_omics_marks_the_models_that_cat_the_families():
    """omic_input unique_genes applies to these models only; the family-token ones keep blocks."""
    concat = {"snn", "porpoise", "hfbsurv", "snn_clinical", "porpoise_clinical"}
    assert {n for n in list_models() if _model(n).concat_omics} == concat


@pytest.mark.parametrize("model_name", ["snn", "porpoise", "hfbsurv"])
def test_concat_omics_models_read_the_concatenation(model_name):
    """One block of all columns gives the same prediction as the families it concatenates."""
    model = _model(model_name).eval()
    mods = model_modalities(model_name)
    path, omics = _inputs(7)
    path = path if "path" in mods else None
    model.omic_sizes = [sum(OMIC_SIZES)]  # same first-layer width, one block
    with torch.no_grad():
        one = model(path, [torch.cat(omics)])
        model.omic_sizes = list(OMIC_SIZES)
        fams = model(path, omics)
    torch.testing.assert_close(one.hazards, fams.hazards, rtol=0, atol=0)
