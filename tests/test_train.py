"""train_fold on a tiny synthetic cohort whose risk is encoded in omics and patches."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from mmsurv.bags.data import make_folds, read_clinical, write_bags, write_splits
from mmsurv.bags.omics import build_omics_bags
from mmsurv.training.dataset import time_bin_edges
from mmsurv.training.train import resolve_params, train_fold

torch.set_num_threads(1)

DIM = 32
N_BINS = 4
CONTRACT = (
    ["case_id", "fold", "seed", "risk"]
    + [f"hazard_{j}" for j in range(N_BINS)]
    + [f"surv_{j}" for j in range(N_BINS)]
    + ["survival_months", "event", "censorship", "model", "cohort", "model_selection"]
    + ["encoder_weights"]
)


def make_cohort(root, n: int = 40, seed: int = 0, n_folds: int = 5) -> dict[str, str]:
    """Write clinical/omics/families/bags/splits of a cohort where risk drives survival."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"TCGA-{i:03d}" for i in range(n)]
    risk = rng.normal(size=n)
    t_event = rng.exponential(30.0 * np.exp(-1.2 * risk))
    t_cens = rng.uniform(10, 120, size=n)
    event = t_event <= t_cens
    clin = pd.DataFrame(
        {"case_id": ids, "survival_months": np.minimum(t_event, t_cens), "event": event.astype(int)}
    )
    clin.to_csv(root / "clinical.tsv", sep="\t", index=False)

    fams = {f"fam{j}": [f"G{j}x{k}" for k in range(2 + j % 3)] for j in range(6)}
    pd.DataFrame({k: pd.Series(v) for k, v in fams.items()}).to_csv(
        root / "families.csv", index=False
    )
    omics = {"case_id": ids}
    for j, genes in fams.items():
        for g in genes:
            signal = risk if j in ("fam0", "fam1") else 0.0
            omics[f"{g}_rnaseq"] = signal + 0.5 * rng.normal(size=n)
            omics[f"{g}_cnv"] = rng.integers(-1, 2, size=n).astype(float)
    pd.DataFrame(omics).to_csv(root / "omics.tsv", sep="\t", index=False)
    build_omics_bags(
        root / "omics.tsv", root / "families.csv", root / "omics.parquet", root / "families.json"
    )

    direction = np.zeros(DIM, np.float32)
    direction[:4] = 1.0
    bags = {}
    for cid, r in zip(ids, risk, strict=True):
        n_patches = int(rng.integers(5, 21))
        feats = rng.normal(size=(n_patches, DIM)).astype(np.float32) + np.float32(r) * direction
        bags[cid] = [(f"{cid}-slide", feats)]
    write_bags(root / "bags.h5", bags, {"encoder": "dummy", "weights": "random-init"})

    splits = make_folds(read_clinical(root / "clinical.tsv"), n_folds=n_folds, seed=seed)
    write_splits(splits, root / "splits.tsv")
    return {
        "bags_h5": str(root / "bags.h5"),
        "omics_parquet": str(root / "omics.parquet"),
        "families_json": str(root / "families.json"),
        "clinical_tsv": str(root / "clinical.tsv"),
        "splits_tsv": str(root / "splits.tsv"),
    }


def params(**kw):
    base = dict(
        epochs=3, lr=1e-3, grad_accum=4, max_patches=8, num_threads=1,
        model_kwargs={"path_dim": DIM},
    )  # fmt: skip
    return {**base, **kw}


def run(paths, tmp_path, model, fold=0, seed=0, out="out", **kw):
    return train_fold(
        cohort="SYN", model_name=model, fold=fold, out_dir=str(tmp_path / out),
        params=params(**kw), seed=seed, device="cpu", **paths,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("cohort"), n=40)


@pytest.mark.parametrize("model", ["snn", "attn_mil", "ours"])
def test_outputs_contract_and_loss_decreases(cohort, tmp_path, model, caplog):
    with caplog.at_level(logging.INFO, logger="mmsurv.training.train"):
        summary = run(cohort, tmp_path, model, fold=1, epochs=5)
    out = tmp_path / "out"
    for name in ("predictions.parquet", "checkpoint.pt", "train_log.tsv", "meta.json"):
        assert (out / name).is_file()
    assert not list(out.glob("*.part"))
    assert sum("epoch " in r.message for r in caplog.records) == 5

    pred = pd.read_parquet(out / "predictions.parquet")
    assert list(pred.columns) == CONTRACT
    splits = pd.read_csv(cohort["splits_tsv"], sep="\t", dtype={"case_id": str})
    test_ids = set(splits.loc[splits.fold == 1, "case_id"])
    assert set(pred["case_id"]) == test_ids and len(pred) == len(test_ids)
    assert not set(pred["case_id"]) & set(splits.loc[splits.fold != 1, "case_id"])
    surv = pred[[f"surv_{j}" for j in range(N_BINS)]].to_numpy()
    np.testing.assert_allclose(pred["risk"], -surv.sum(axis=1), rtol=1e-12)
    assert pred["event"].dtype == bool
    np.testing.assert_array_equal(pred["censorship"], 1 - pred["event"].astype(int))
    assert (pred["fold"] == 1).all() and (pred["model"] == model).all()
    assert (pred["model_selection"] == "last_epoch").all()
    assert (pred["encoder_weights"] == ("none" if model == "snn" else "random-init")).all()

    meta = json.loads((out / "meta.json").read_text())
    clin = read_clinical(cohort["clinical_tsv"])
    train = clin.loc[meta["train_case_ids"]]
    expected = time_bin_edges(train["survival_months"].to_numpy(), train["event"].to_numpy())
    np.testing.assert_allclose(meta["bin_edges"], expected)
    all_edges = time_bin_edges(clin["survival_months"].to_numpy(), clin["event"].to_numpy())
    assert not np.allclose(meta["bin_edges"], all_edges)  # test fold did not shape the bins
    assert meta["n_test"] == len(test_ids) and meta["seed"] == 0
    assert meta["params"]["model_selection"] == "last_epoch" and "torch" in meta["versions"]
    assert meta["bins_fit_on"] == "train" and meta["omic_input"] == "families"
    assert not any("bins_fit_on" in r.message for r in caplog.records)
    if model != "attn_mil":
        assert len(meta["standardizer"]["columns"]) > 0

    log = pd.read_csv(out / "train_log.tsv", sep="\t")
    assert list(log.columns[:4]) == ["epoch", "loss", "train_cindex", "seconds"]
    assert log["loss"].iloc[-1] < log["loss"].iloc[0]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["model_name"] == model and ckpt["meta"]["fold"] == 1
    assert summary["n_test"] == len(test_ids)


def test_snn_learns_synthetic_risk(tmp_path):
    paths = make_cohort(tmp_path / "big", n=90, seed=3, n_folds=3)
    summary = run(paths, tmp_path, "snn", fold=0, epochs=8, grad_accum=8)
    assert summary["test_cindex"] > 0.6


def test_reproducible_with_same_seed(cohort, tmp_path):
    run(cohort, tmp_path, "ours", out="a", epochs=2)
    run(cohort, tmp_path, "ours", out="b", epochs=2)
    a = pd.read_parquet(tmp_path / "a" / "predictions.parquet")
    b = pd.read_parquet(tmp_path / "b" / "predictions.parquet")
    pd.testing.assert_frame_equal(a, b)
    run(cohort, tmp_path, "ours", out="c", epochs=2, seed=1)
    c = pd.read_parquet(tmp_path / "c" / "predictions.parquet")
    assert not np.allclose(a["risk"], c["risk"])


def test_missing_modality_names_cases(cohort, tmp_path):
    omics = pd.read_parquet(cohort["omics_parquet"]).drop(index="TCGA-000")
    omics.to_parquet(tmp_path / "omics.parquet")
    with pytest.raises(ValueError, match=r"no omics for cases \['TCGA-000'\]"):
        run({**cohort, "omics_parquet": str(tmp_path / "omics.parquet")}, tmp_path, "snn", epochs=1)
    # attn_mil needs no omics, so the same table is fine for it
    run(
        {**cohort, "omics_parquet": str(tmp_path / "omics.parquet")}, tmp_path, "attn_mil", epochs=1
    )

    with h5py.File(cohort["bags_h5"]) as src, h5py.File(tmp_path / "bags.h5", "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        for cid in list(src["cases"])[1:]:
            src.copy(src[f"cases/{cid}"], dst.require_group("cases"), name=cid)
    with pytest.raises(ValueError, match=r"no patch bag for cases \['TCGA-000'\]"):
        run({**cohort, "bags_h5": str(tmp_path / "bags.h5")}, tmp_path, "ours", epochs=1)
    with pytest.raises(ValueError, match="needs pathology but bags_h5 is None"):
        run({**cohort, "bags_h5": None}, tmp_path, "attn_mil", epochs=1)


def test_inner_val_selects_an_epoch_without_the_held_out_fold(cohort, tmp_path):
    """inner_val: the epoch is chosen on cases of the training folds only, and recorded."""
    run(cohort, tmp_path, "snn", fold=2, epochs=6, model_selection="inner_val")
    out = tmp_path / "out"
    meta = json.loads((out / "meta.json").read_text())
    splits = pd.read_csv(cohort["splits_tsv"], sep="\t", dtype={"case_id": str})
    outer_train = set(splits.loc[splits.fold != 2, "case_id"])
    inner_val = set(meta["inner_val_case_ids"])
    # 1/5 of the 32 training cases (stratified K-fold with K = 5), all from the training folds
    assert len(inner_val) in (6, 7) and inner_val < outer_train
    assert set(meta["train_case_ids"]) == outer_train  # inner-val cases count as training
    log = pd.read_csv(out / "train_log.tsv", sep="\t")
    assert {"val_loss", "val_cindex"} <= set(log.columns) and len(log) == 6
    assert meta["selected_epoch"] == int(log["val_loss"].idxmin())
    pred = pd.read_parquet(out / "predictions.parquet")
    assert (pred["model_selection"] == "inner_val").all()
    assert set(pred["case_id"]) == set(splits.loc[splits.fold == 2, "case_id"])
    assert meta["model_selection"] == "inner_val"


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"model_selection": "best_val"}, "model_selection='best_val' is not allowed"),
        ({"inner_val_fraction": 1.0}, r"inner_val_fraction must be in \(0, 1\)"),
        ({"epoch": 3}, r"unknown training params \['epoch'\]"),
        ({"grad_accum": 0}, "grad_accum must be >= 1"),
        ({"bins_fit_on": "test"}, r"bins_fit_on='test'; choose one of \('train', 'all'\)"),
        ({"l1_scaling": "per_batch"}, "l1_scaling='per_batch'"),
        ({"l1_scope": "path"}, "l1_scope='path'"),
        ({"omic_input": "genes"}, "omic_input='genes'"),
        ({"partial_step": "no"}, "partial_step must be true or false"),
    ],
)
def test_bad_params(bad, match):
    with pytest.raises(ValueError, match=match):
        resolve_params(bad)


def test_workflow_training_config_is_accepted():
    # the workflow passes its whole `training:` block; models/seeds/device are arguments
    p = resolve_params(
        {"models": ["snn"], "seeds": [1], "device": "auto", "protocol": "mcat", "epochs": 2}
    )
    assert p["epochs"] == 2 and "seeds" not in p and "protocol" not in p and p["lr"] == 2e-4


class _OomOffCpu(torch.nn.Module):
    """Scores a bag by its mean; out of memory off the CPU (or everywhere, `always`)."""

    def __init__(self, always: bool = False):
        super().__init__()
        self.always = always

    def forward(self, path, omics):
        if self.always or path.device.type != "cpu":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (test)")
        from mmsurv.models import ModelOutput

        return ModelOutput.from_logits(path.mean(0, keepdim=True)[:, :N_BINS])


def test_eval_falls_back_to_cpu_on_gpu_out_of_memory(caplog):
    """A huge evaluation bag that does not fit the accelerator is scored on the CPU and listed."""
    from mmsurv.training.loop import predict_case

    item = {"case_id": "TCGA-HUGE", "path": torch.randn(50, DIM), "omics": None}
    fallbacks: list[str] = []
    # "meta" stands in for an accelerator: inputs move there, the forward pass runs out of memory.
    with caplog.at_level(logging.WARNING, logger="mmsurv.training.train"):
        res = predict_case(_OomOffCpu(), item, True, False, torch.device("meta"), fallbacks)
    assert fallbacks == ["TCGA-HUGE"]
    assert res.hazards.device.type == "cpu" and res.hazards.shape == (1, N_BINS)
    assert "TCGA-HUGE (50 patches)" in caplog.text and "scored on the CPU" in caplog.text
    # Out of memory on the CPU itself is a real error, not something to retry.
    with pytest.raises(torch.cuda.OutOfMemoryError):
        predict_case(_OomOffCpu(always=True), item, True, False, torch.device("cpu"), [])


def test_keep_unimodal_trains_each_model_on_the_cases_it_can_use(cohort, tmp_path):
    """missing_modality exclude: omics-less cases go to attn_mil, not snn; bag-less, vice versa."""
    omics = pd.read_parquet(cohort["omics_parquet"]).drop(index=["TCGA-000", "TCGA-001"])
    omics.to_parquet(tmp_path / "omics.parquet")
    with h5py.File(cohort["bags_h5"]) as src, h5py.File(tmp_path / "bags.h5", "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        for cid in list(src["cases"]):
            if cid != "TCGA-002":
                src.copy(src[f"cases/{cid}"], dst.require_group("cases"), name=cid)
    paths = {
        **cohort,
        "omics_parquet": str(tmp_path / "omics.parquet"),
        "bags_h5": str(tmp_path / "bags.h5"),
    }
    splits = pd.read_csv(cohort["splits_tsv"], sep="\t")
    everyone = set(splits["case_id"])
    expect = {
        "snn": {"TCGA-000": "no omics", "TCGA-001": "no omics"},
        "attn_mil": {"TCGA-002": "no patches"},
        "ours": {"TCGA-000": "no omics", "TCGA-001": "no omics", "TCGA-002": "no patches"},
    }
    for model, excluded in expect.items():
        used = set()
        for fold in sorted(set(splits["fold"])):
            out = f"{model}{fold}"
            run(paths, tmp_path, model, fold=fold, out=out, epochs=1, missing_modality="exclude")
            meta = json.loads((tmp_path / out / "meta.json").read_text())
            assert meta["missing_modality"] == "exclude"
            in_fold = set(splits.loc[splits["fold"] == fold, "case_id"])
            assert meta["excluded_cases"] == {
                c: r for c, r in excluded.items() if c in everyone
            }  # the whole split's cases are checked, train and test
            pred = pd.read_parquet(tmp_path / out / "predictions.parquet")
            if model == "ours":
                # a multimodal model scores the held-out cases lacking one modality with that
                # modality withheld (tests/test_missing_modality.py), marking them
                withheld = {c: "omic" if r == "no omics" else "path" for c, r in excluded.items()}
                assert meta["unimodal_test_cases"] == {
                    c: w for c, w in withheld.items() if c in in_fold
                }
                assert set(pred["case_id"]) == in_fold
                uni = pred.set_index("case_id")["modalities_used"]
                assert all(
                    uni[c] == ("path" if excluded[c] == "no omics" else "omic")
                    for c in excluded
                    if c in in_fold
                )
                used |= set(pred["case_id"]) - set(excluded)
                continue
            assert set(pred["case_id"]) == in_fold - set(excluded)
            used |= set(pred["case_id"])
        # every usable case is scored once over the folds; the unusable ones never
        assert used == everyone - set(excluded), model
    # the default (missing_policy drop) still refuses an incomplete case, naming it
    with pytest.raises(ValueError, match=r"no omics for cases \[.*'TCGA-000'"):
        run(paths, tmp_path, "snn", epochs=1)


def test_bins_fit_on_all_uses_every_case_and_warns(cohort, tmp_path, caplog):
    """bins_fit_on all (MCAT): edges = time_bin_edges over train + held-out, logged, recorded."""
    with caplog.at_level(logging.INFO, logger="mmsurv.training.train"):
        run(cohort, tmp_path, "snn", fold=1, epochs=1, bins_fit_on="all")
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    clin = read_clinical(cohort["clinical_tsv"]).loc[meta["train_case_ids"] + meta["test_case_ids"]]
    assert len(clin) == 40  # every case of the cohort
    expected = time_bin_edges(clin["survival_months"].to_numpy(), clin["event"].to_numpy())
    np.testing.assert_array_equal(meta["bin_edges"], expected)
    train = clin.loc[meta["train_case_ids"]]
    train_edges = time_bin_edges(train["survival_months"].to_numpy(), train["event"].to_numpy())
    assert not np.allclose(meta["bin_edges"], train_edges)
    assert meta["bins_fit_on"] == "all" and meta["params"]["bins_fit_on"] == "all"
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warned] == [
        "bins_fit_on all: the bin edges use the held-out cases' survival times (leaks test "
        "times into the bin edges; MCAT's protocol)"
    ]


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory, cohort):
    """The cohort with fam1 and fam4 also holding fam0's first two columns (genes in 2 families)."""
    root = tmp_path_factory.mktemp("overlap")
    doc = json.loads(Path(cohort["families_json"]).read_text())
    fams = doc["families"]
    fams["fam1"] = fams["fam1"] + fams["fam0"][:2]
    fams["fam4"] = fams["fam0"][:1] + fams["fam4"]
    (root / "families.json").write_text(json.dumps(doc))
    return {**cohort, "families_json": str(root / "families.json")}, fams


def test_omic_input_unique_genes_feeds_each_column_once(overlapping, tmp_path):
    """snn: width = number of unique columns (families: the concatenated width); mcat: families."""
    paths, fams = overlapping
    n_cat = sum(len(c) for c in fams.values())
    unique = list(dict.fromkeys(c for cols in fams.values() for c in cols))
    assert n_cat == len(unique) + 3
    width = {}
    for mode in ("families", "unique_genes"):
        run(paths, tmp_path, "snn", out=mode, epochs=1, omic_input=mode)
        ckpt = torch.load(tmp_path / mode / "checkpoint.pt", weights_only=False)
        width[mode] = ckpt["state_dict"]["fc_omic.0.0.weight"].shape[1]
        assert ckpt["meta"]["omic_input"] == mode
    assert width == {"families": n_cat, "unique_genes": len(unique)}
    run(paths, tmp_path, "mcat", out="mcat", epochs=1, omic_input="unique_genes")
    meta = json.loads((tmp_path / "mcat" / "meta.json").read_text())
    assert meta["omic_input"] == "families"
    assert meta["model_kwargs_resolved"]["omic_sizes"] == [len(c) for c in fams.values()]


def test_unique_genes_block_is_the_first_occurrences_in_family_order(overlapping):
    """The one block holds each column once, in the order of its first family."""
    from mmsurv.training.setup import _load_omics

    paths, fams = overlapping
    ids = pd.read_parquet(paths["omics_parquet"]).index.astype(str).tolist()
    blocks, _ = _load_omics(paths["omics_parquet"], fams, ids, ids)
    (one,), scaler = _load_omics(paths["omics_parquet"], fams, ids, ids, unique=True)
    names = [c for cols in fams.values() for c in cols]
    first = [names.index(c) for c in dict.fromkeys(names)]
    np.testing.assert_array_equal(one, np.concatenate(blocks, axis=1)[:, first])
    assert scaler.to_dict()["columns"] == list(dict.fromkeys(names))


def test_protocol_switches_that_cannot_train_fail_before_training(cohort, tmp_path):
    """l1_scope omic on a pathology-only model, and partial_step false with too few cases."""
    with pytest.raises(ValueError, match="AttnMIL reads no omics"):
        run(cohort, tmp_path, "attn_mil", epochs=1, l1_reg=1e-4, l1_scope="omic")
    run(cohort, tmp_path, "attn_mil", epochs=1, l1_scope="omic")  # no penalty: nothing to scope
    with pytest.raises(ValueError, match="partial_step false with grad_accum=64 > 32"):
        run(cohort, tmp_path, "snn", epochs=1, grad_accum=64, partial_step=False)


@pytest.mark.parametrize("model", ["snn", "ours"])
def test_mcat_switches_train_end_to_end(cohort, tmp_path, model):
    """All MCAT switches together on a real job: it trains and records them."""
    switches = dict(
        bins_fit_on="all", l1_scaling="per_case", l1_scope="omic", omic_input="unique_genes",
        partial_step=False, l1_reg=1e-4,
    )  # fmt: skip
    run(cohort, tmp_path, model, epochs=2, grad_accum=3, **switches)
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert {k: meta["params"][k] for k in switches} == switches
    pred = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert np.isfinite(pred["risk"]).all()
