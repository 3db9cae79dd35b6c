"""Linear floors (coxnet_omic, coxnet_path, cox_clinical): fold jobs, outputs, Table 1 group."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import CONTRACT, DIM, make_cohort  # tests/ is on sys.path (rootdir imports)

from mmsurv.bags.data import BagStore, read_clinical, read_splits
from mmsurv.evaluate.cindex_tables import write_cindex_tables
from mmsurv.evaluate.paper_tables import PAPER_TABLES, paper_table, write_paper_table
from mmsurv.evaluate.stage import write_cindex_outputs, write_metrics_outputs
from mmsurv.model_catalog import LINEAR_FLOORS, MODEL_INPUTS
from mmsurv.models import create_floor, list_floors, list_models, model_modalities
from mmsurv.training.linear import clinical_inputs, mean_pooled_bags
from mmsurv.training.setup import FoldCases
from mmsurv.training.train import train_fold

FLOORS = ["coxnet_omic", "coxnet_path", "cox_clinical"]


def _add_covariates(clinical_tsv: str, seed: int = 0) -> None:
    """Age carries the risk (older = worse), sex none; a missing age and an odd site code."""
    clin = pd.read_csv(clinical_tsv, sep="\t", dtype={"case_id": str})
    rng = np.random.default_rng(seed)
    hazard_rank = (-clin["survival_months"]).rank().to_numpy()  # proxy of the planted risk
    clin["age"] = np.round(50 + 30 * hazard_rank / len(clin) + rng.normal(0, 3, len(clin)))
    clin.loc[3, "age"] = np.nan
    clin["sex"] = rng.choice(["female", "male"], len(clin))
    clin["site"] = rng.choice([21, 33], len(clin))  # numeric-looking TSS codes: categories
    clin.to_csv(clinical_tsv, sep="\t", index=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    paths = make_cohort(tmp_path_factory.mktemp("floors"), n=120, seed=3)
    _add_covariates(paths["clinical_tsv"])
    return paths


def _run(paths: dict[str, str], out: Path, model: str, fold: int = 0, **params: object) -> dict:
    return train_fold(
        cohort="SYN", model_name=model, fold=fold, out_dir=str(out),
        params={"num_threads": 1, **params}, seed=0, device="cpu", **paths,
    )  # fmt: skip


# --------------------------------------------------------------------------- registry
def test_floors_are_registered_beside_the_deep_models() -> None:
    assert list_floors() == sorted(FLOORS) and tuple(FLOORS) == LINEAR_FLOORS
    assert not set(FLOORS) & set(list_models())  # no torch forward/backward tests for them
    for name in FLOORS:
        assert model_modalities(name) == MODEL_INPUTS[name]
    assert model_modalities("cox_clinical") == frozenset({"clinical"})
    assert create_floor("coxnet_omic", l1_ratio=0.9).l1_ratio == 0.9
    with pytest.raises(ValueError, match=r"model_kwargs.coxnet_omic: unknown key\(s\) \['lr'\]"):
        create_floor("coxnet_omic", lr=1.0)
    with pytest.raises(ValueError, match=r"model_kwargs.coxnet_path.l1_ratio must be in"):
        create_floor("coxnet_path", l1_ratio=0.0)


# --------------------------------------------------------------------------- coxnet_omic
def test_coxnet_omic_recovers_a_linear_gene_signal(cohort: dict[str, str], tmp_path: Path) -> None:
    """Risk is linear in the fam0/fam1 genes: held-out c-index well above chance on 2 folds."""
    cis = [_run(cohort, tmp_path / f"f{k}", "coxnet_omic", fold=k)["test_cindex"] for k in (0, 1)]
    assert min(cis) >= 0.7, cis
    ckpt = torch.load(tmp_path / "f0" / "checkpoint.pt", weights_only=True)
    coef = dict(zip(ckpt["feature_names"], ckpt["coef"].tolist(), strict=True))
    signal = [v for k, v in coef.items() if k.startswith(("G0x", "G1x")) and "rnaseq" in k]
    noise = [v for k, v in coef.items() if not k.startswith(("G0x", "G1x"))]
    # each omics column once (a gene in two families is not doubled); signal genes raise risk
    assert len(coef) == len(set(coef)) and sum(signal) > 0 and max(signal) > max(noise)


def test_inner_cv_never_sees_the_held_out_cases(cohort: dict[str, str], tmp_path: Path) -> None:
    """Permuting the held-out fold's labels leaves the grid, alpha, coefficients and risks."""
    _run(cohort, tmp_path / "a", "coxnet_omic", fold=2)
    clin = pd.read_csv(cohort["clinical_tsv"], sep="\t", dtype={"case_id": str})
    held = set(read_splits(cohort["splits_tsv"]).query("fold == 2")["case_id"])
    rows = clin.index[clin["case_id"].isin(held)]
    perm = np.random.default_rng(1).permutation(len(rows))
    for col in ("survival_months", "event"):
        clin.loc[rows, col] = clin.loc[rows, col].to_numpy()[perm]
    shuffled = {**cohort, "clinical_tsv": str(tmp_path / "clinical_shuffled.tsv")}
    clin.to_csv(shuffled["clinical_tsv"], sep="\t", index=False)
    _run(shuffled, tmp_path / "b", "coxnet_omic", fold=2)
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True) for d in "ab")
    assert a["alpha"] == b["alpha"]
    torch.testing.assert_close(a["coef"], b["coef"], rtol=0, atol=0)
    log_a, log_b = (pd.read_csv(tmp_path / d / "train_log.tsv", sep="\t") for d in "ab")
    pd.testing.assert_frame_equal(log_a, log_b)
    assert log_a["chosen"].sum() == 1 and len(log_a) > 5  # the inner-CV alpha grid
    assert (
        log_a["mean_inner_cindex"].max() == log_a.loc[log_a["chosen"], "mean_inner_cindex"].iloc[0]
    )
    ra, rb = (pd.read_parquet(tmp_path / d / "predictions.parquet") for d in "ab")
    np.testing.assert_array_equal(ra["risk"], rb["risk"])


def test_inner_cv_is_repeated_over_shuffles_of_the_training_cases() -> None:
    """inner_repeats shuffles of event-stratified inner folds; one repeat = StratifiedKFold."""
    from sklearn.model_selection import StratifiedKFold

    from mmsurv.training.linear import _inner_splits

    events = np.random.default_rng(0).random(90) < 0.4
    splits = _inner_splits(events, 5, seed=7, repeats=3)
    assert len(splits) == 15
    for r in range(3):  # each repeat's validation folds partition the training cases
        val = np.concatenate([v for _, v in splits[5 * r : 5 * r + 5]])
        assert sorted(val) == list(range(90))
        for fit, v in splits[5 * r : 5 * r + 5]:
            assert not set(fit) & set(v) and 5 <= events[v].sum() <= 8  # stratified by event
    assert not all((a[1] == b[1]).all() for a, b in zip(splits[:5], splits[5:10], strict=True))
    single = StratifiedKFold(5, shuffle=True, random_state=7).split(np.zeros((90, 1)), events)
    for a, b in zip(_inner_splits(events, 5, seed=7, repeats=1), single, strict=True):
        np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="model_kwargs.coxnet_omic.inner_repeats"):
        create_floor("coxnet_omic", inner_repeats=0)


def test_breslow_baseline_matches_sksurv_and_stays_a_survival_curve_at_any_risk_spread() -> None:
    """Moderate risks: sksurv's Breslow S(t | x); risks spanning +-45 (a tiny Coxnet alpha on
    thousands of genes): still 0 <= S <= 1, non-increasing, where sksurv's went > 1 and inf."""
    from sksurv.linear_model.coxph import BreslowEstimator

    from mmsurv.training.linear import Breslow

    rng = np.random.default_rng(0)
    time, event = rng.exponential(20, 300).round(1), rng.random(300) < 0.5
    at = np.quantile(time[event], [0.1, 0.5, 0.9])
    risk = rng.normal(0, 0.5, 300)
    ref = BreslowEstimator().fit(risk, event, time).get_survival_function(risk[:5])
    want = np.array([fn(at) for fn in ref])
    np.testing.assert_allclose(Breslow.fit(risk, time, event).survival(risk[:5], at), want)
    wide = rng.normal(0, 15, 300)
    base = Breslow.fit(wide, time, event)
    s = base.survival(np.array([-45.0, 0.0, 45.0, wide.max() + 5]), np.sort(time))
    assert np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all()
    assert (np.diff(s, axis=1) <= 0).all() and (base.cumhaz >= 0).all()


def test_floor_checkpoint_rebuilds_the_predicted_survival(
    cohort: dict[str, str], tmp_path: Path
) -> None:
    """S(t | x) from checkpoint.pt (coef, offset, log baseline) = the predictions' surv_j."""
    _run(cohort, tmp_path, "cox_clinical", fold=1)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    pred = pd.read_parquet(tmp_path / "predictions.parquet")
    edges = np.asarray(json.loads((tmp_path / "meta.json").read_text())["bin_edges"])
    idx = np.searchsorted(ck["baseline_time"].numpy(), edges[1:], side="right") - 1
    log_h = np.where(idx >= 0, ck["baseline_log_cumhazard"].numpy()[np.clip(idx, 0, None)], -np.inf)
    surv = np.exp(-np.exp(log_h[None, :] + pred["risk"].to_numpy()[:, None]))
    cols = [c for c in pred.columns if c.startswith("surv_")]
    np.testing.assert_allclose(surv, pred[cols].to_numpy(), rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- coxnet_path
def test_coxnet_path_reads_the_mean_patch_feature(cohort: dict[str, str], tmp_path: Path) -> None:
    ids = read_splits(cohort["splits_tsv"])["case_id"].tolist()[:5]
    pooled = mean_pooled_bags(cohort["bags_h5"], ids)
    with BagStore(cohort["bags_h5"]) as store:
        expected = np.stack([store[c].astype(np.float64).mean(axis=0) for c in ids])
    assert pooled.shape == (5, DIM)
    np.testing.assert_allclose(pooled.to_numpy(), expected, rtol=1e-6)
    summary = _run(cohort, tmp_path / "p", "coxnet_path", fold=0)
    assert summary["test_cindex"] >= 0.7  # the bags carry the risk on 4 feature dims
    ckpt = torch.load(tmp_path / "p" / "checkpoint.pt", weights_only=True)
    assert len(ckpt["preprocess"]["standardizer"]["mean"]) == DIM
    pred = pd.read_parquet(tmp_path / "p" / "predictions.parquet")
    assert (pred["encoder_weights"] == "random-init").all()  # the bags' provenance is kept


# --------------------------------------------------------------------------- cox_clinical
def test_clinical_one_hot_scaling_and_imputation(cohort: dict[str, str]) -> None:
    clinical = read_clinical(cohort["clinical_tsv"])
    ids = clinical.index.tolist()
    cases = FoldCases(train_ids=ids[:80], test_ids=ids[80:], n_val=0, excluded={})
    x = clinical_inputs(clinical, cases, ["age", "sex", "site"], clinical_tsv="c.tsv")
    assert x.train.columns.tolist() == [
        "age", "sex_female", "sex_male", "site_21", "site_33"
    ]  # fmt: skip
    age = clinical.loc[ids[:80], "age"]
    filled = age.fillna(age.median())
    assert x.train.loc[ids[3], "age"] == pytest.approx(
        (age.median() - filled.mean()) / filled.std(ddof=0)
    )
    assert x.train["age"].mean() == pytest.approx(0, abs=1e-12)  # training statistics only
    np.testing.assert_array_equal(x.train[["sex_female", "sex_male"]].sum(axis=1), 1.0)
    assert x.preprocess["categorical"] == ["sex", "site"]
    assert x.preprocess["categories"]["site"] == ["21", "33"]


def test_clinical_missing_column_names_file_and_column(
    cohort: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"clinical.tsv: no column\(s\) \['stage'\] for cox_clin"):
        _run(cohort, tmp_path / "c", "cox_clinical", clinical_covariates=["age", "stage"])
    with pytest.raises(ValueError, match="clinical_covariates must be a non-empty list"):
        _run(cohort, tmp_path / "c", "cox_clinical", clinical_covariates=[])
    with pytest.raises(ValueError, match=r"\['event'\] are labels, not covariates"):
        _run(cohort, tmp_path / "c", "cox_clinical", clinical_covariates=["age", "event"])


def test_cox_clinical_learns_from_age(cohort: dict[str, str], tmp_path: Path) -> None:
    summary = _run(cohort, tmp_path / "c", "cox_clinical", clinical_covariates=["age", "sex"])
    assert summary["test_cindex"] >= 0.7
    ckpt = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=True)
    coef = dict(zip(ckpt["feature_names"], ckpt["coef"].tolist(), strict=True))
    assert coef["age"] > 0 and ckpt["alpha"] == 1.0


# --------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("model", FLOORS)
def test_fold_outputs_are_what_the_evaluate_stage_reads(
    cohort: dict[str, str], tmp_path: Path, model: str
) -> None:
    files = []
    for k in range(5):
        out = tmp_path / model / f"fold{k}"
        _run(cohort, out, model, fold=k)
        files.append(out / "predictions.parquet")
    out = tmp_path / model / "fold0"
    for name in ("predictions.parquet", "checkpoint.pt", "train_log.tsv", "meta.json"):
        assert (out / name).is_file()
    pred = pd.read_parquet(out / "predictions.parquet")
    assert list(pred.columns) == CONTRACT
    held = set(read_splits(cohort["splits_tsv"]).query("fold == 0")["case_id"])
    assert set(pred["case_id"]) == held
    surv = pred[[f"surv_{j}" for j in range(4)]].to_numpy()
    assert ((surv >= 0) & (surv <= 1)).all() and (np.diff(surv, axis=1) <= 0).all()
    # higher risk = worse: S(t) falls as the linear predictor rises (proportional hazards)
    order = np.argsort(pred["risk"].to_numpy())
    assert (np.diff(surv[order, -1]) <= 1e-12).all()
    haz = pred[[f"hazard_{j}" for j in range(4)]].to_numpy()
    np.testing.assert_allclose(np.cumprod(1 - haz, axis=1), surv, rtol=1e-9, atol=1e-12)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "linear_floor" and meta["model"] == model and len(meta["bin_edges"]) == 5
    assert set(meta["test_case_ids"]) == held and not held & set(meta["train_case_ids"])
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)  # no model class needed
    assert ckpt["kind"] == "linear_floor" and ckpt["coef"].numel() == len(ckpt["feature_names"])
    stats = "categories" if model == "cox_clinical" else "standardizer"
    assert stats in ckpt["preprocess"]
    # the evaluate stage: c-index tables and time-dependent metrics from these files
    per_fold = write_cindex_outputs(
        files, folds_tsv=tmp_path / "f.tsv", out_csv=tmp_path / "c.csv", out_md=tmp_path / "c.md",
        model_order=[model], cohort_order=["SYN"],
    )  # fmt: skip
    assert len(per_fold) == 5 and per_fold["cindex"].notna().all()
    summary = write_metrics_outputs(
        files, out_csv=tmp_path / "m.csv", out_md=tmp_path / "m.md", folds_tsv=tmp_path / "mf.tsv",
        model_order=[model], cohort_order=["SYN"], n_bootstrap=50,
    )  # fmt: skip
    assert len(summary) and "*Linear floor*" in (tmp_path / "c.md").read_text()


# --------------------------------------------------------------------------- Table 1
def _per_fold(means: dict[str, float]) -> pd.DataFrame:
    rows = [
        {"cohort": "TCGA-BLCA", "model": m, "fold": k, "cindex": v + d, "n": 20, "n_events": 9,
         "model_selection": "last_epoch", "encoder_weights": "none"}
        for m, v in means.items() for k, d in enumerate((-0.01, 0.0, 0.01))
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_table1_shows_the_linear_floor_group_and_models_below_it(tmp_path: Path) -> None:
    means = {"snn": 0.55, "attn_mil": 0.60, "ours": 0.70, "coxnet_omic": 0.62,
             "coxnet_path": 0.58, "cox_clinical": 0.64}  # fmt: skip
    per_fold = _per_fold(means)
    spec = PAPER_TABLES["table1"]
    long = paper_table(per_fold, spec, configured_models=list(means), cohort_order=["TCGA-BLCA"])
    assert long["model"].tolist() == ["snn", "attn_mil", "ours", *FLOORS]
    assert long["group"].tolist() == ["comparison"] * 3 + ["linear floor"] * 3
    # snn (genes) is below coxnet_omic; attn_mil (patches) beats coxnet_path; ours beats both
    assert long.set_index("model")["below_floor"].to_dict() == {
        "snn": True, "attn_mil": False, "ours": False,
        "coxnet_omic": False, "coxnet_path": False, "cox_clinical": False,
    }  # fmt: skip
    assert long.set_index("model")["rank"]["cox_clinical"] == 2  # floors are ranked too
    paths = {ext: tmp_path / f"t1.{ext}" for ext in ("csv", "md", "tex")}
    write_paper_table(
        per_fold, spec, out_csv=paths["csv"], out_md=paths["md"], out_tex=paths["tex"],
        configured_models=list(means), cohort_order=["TCGA-BLCA"],
    )  # fmt: skip
    md = paths["md"].read_text().splitlines()
    heading = md.index("| *Linear floor* |  |  |  |")
    assert [r.split(" | ")[0] for r in md[heading - 3 : heading]] == [
        "| SNN",
        "| AttnMIL",
        "| Ours",
    ]
    assert md[heading + 1].startswith("| Coxnet (genes) |  | ✓ |")
    assert md[heading - 3] == "| SNN |  | ✓ | 0.550 ± 0.010‡ |"
    assert any(line.startswith("- ‡ not above its linear floor") and "SNN (TCGA-BLCA)" in line
               for line in md)  # fmt: skip
    tex = paths["tex"].read_text()
    assert r"\multicolumn{4}{l}{\textit{Linear floor}} \\" in tex and r"$^{\ddagger}$" in tex


def test_cindex_table_lists_floors_last_under_their_heading(tmp_path: Path) -> None:
    per_fold = _per_fold({"coxnet_omic": 0.62, "snn": 0.55, "cox_clinical": 0.6})
    write_cindex_tables(
        per_fold, tmp_path / "c.csv", tmp_path / "c.md",
        model_order=["coxnet_omic", "snn", "cox_clinical"], cohort_order=["TCGA-BLCA"],
    )  # fmt: skip
    rows = [r.split(" | ")[0] for r in (tmp_path / "c.md").read_text().splitlines()[2:6]]
    assert rows == ["| snn", "| *Linear floor*", "| coxnet_omic", "| cox_clinical"]
