"""Clinical covariates as a modality: the *_clinical deep models, their encoding and outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_tables import _per_fold_models
from test_train import make_cohort, run  # tests/ is on sys.path (pytest rootdir import mode)

from mmsurv.attribution import attribute_model
from mmsurv.bags.data import read_clinical, read_splits
from mmsurv.evaluate.missing_table import missing_modality_summary
from mmsurv.evaluate.paper_tables import PAPER_TABLES, paper_table
from mmsurv.heatmaps.scores import (
    case_omics,
    load_fold_model,
    panel_datasets,
    read_case_bag,
    score_case,
)
from mmsurv.models import create_model
from mmsurv.training.clinical import encode_clinical, fit_clinical
from mmsurv.training.linear import clinical_inputs
from mmsurv.training.setup import FoldCases

torch.set_num_threads(1)
FOLD = 0
COVARIATES = ["age", "sex"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """test_train's cohort plus age and sex, each missing for one training case of FOLD."""
    paths = make_cohort(tmp_path_factory.mktemp("clin_cohort"), n=30, n_folds=3)
    clin = pd.read_csv(paths["clinical_tsv"], sep="\t", dtype={"case_id": str})
    rng = np.random.default_rng(7)
    clin["age"] = rng.normal(60, 10, len(clin)).round(1)
    clin["sex"] = rng.choice(["female", "male"], len(clin))
    splits = read_splits(paths["splits_tsv"])
    train = splits.loc[splits["fold"] != FOLD, "case_id"].tolist()
    clin.loc[clin["case_id"] == train[0], "age"] = np.nan
    clin.loc[clin["case_id"] == train[1], "sex"] = np.nan
    clin.to_csv(paths["clinical_tsv"], sep="\t", index=False)
    return paths


def _cases(cohort: dict[str, str]) -> FoldCases:
    splits = read_splits(cohort["splits_tsv"])
    train = splits.loc[splits["fold"] != FOLD, "case_id"].tolist()
    test = splits.loc[splits["fold"] == FOLD, "case_id"].tolist()
    return FoldCases(train_ids=train, test_ids=test, n_val=0, excluded={})


@pytest.fixture(scope="module")
def runs(cohort: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ours_clinical and snn_clinical trained on fold 0 (one epoch each): their run dirs."""
    root = tmp_path_factory.mktemp("clin_runs")
    for model in ("ours_clinical", "snn_clinical"):
        run(cohort, root, model, fold=FOLD, epochs=1, out=model, clinical_covariates=COVARIATES)
    return {m: root / m for m in ("ours_clinical", "snn_clinical")}


def test_deep_block_is_cox_clinicals_encoding(cohort: dict[str, str]) -> None:
    """One source of truth: the stored-statistics encoding equals cox_clinical's features."""
    clinical, cases = read_clinical(cohort["clinical_tsv"]), _cases(cohort)
    floor = clinical_inputs(clinical, cases, COVARIATES, clinical_tsv=cohort["clinical_tsv"])
    stats = {k: v for k, v in floor.preprocess.items() if k != "features"}
    for ids, want in ((cases.train_ids, floor.train), (cases.test_ids, floor.test)):
        got = encode_clinical(clinical, ids, stats, clinical_tsv=cohort["clinical_tsv"])
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=0, atol=1e-12)
    assert list(floor.train.columns) == ["age", "sex_female", "sex_male", "sex_missing"]


def test_held_out_values_do_not_move_the_statistics(cohort: dict[str, str]) -> None:
    clinical, cases = read_clinical(cohort["clinical_tsv"]), _cases(cohort)
    tsv = cohort["clinical_tsv"]
    before = fit_clinical(clinical, cases.train_ids, cases.test_ids, COVARIATES, clinical_tsv=tsv)
    changed = clinical.copy()
    changed.loc[cases.test_ids, "age"] += 100.0
    changed.loc[cases.test_ids[0], "sex"] = "unknown-level"
    changed.loc[cases.test_ids[1], "age"] = np.nan
    after = fit_clinical(changed, cases.train_ids, cases.test_ids, COVARIATES, clinical_tsv=tsv)
    assert after.stats == before.stats
    rows = encode_clinical(changed, cases.test_ids[:2], after.stats, clinical_tsv=tsv)
    # an unseen level is all zeros; a missing number is the training median
    assert rows.iloc[0][["sex_female", "sex_male", "sex_missing"]].tolist() == [0.0, 0.0, 0.0]
    median = float(np.nanmedian(clinical.loc[cases.train_ids, "age"]))
    mean, scale = after.stats["mean"][0], after.stats["scale"][0]
    assert rows.iloc[1]["age"] == pytest.approx((median - mean) / scale)


def test_ours_clinical_has_one_more_genomic_token_than_ours() -> None:
    sizes = [4, 3, 5]
    ours = create_model("ours", omic_sizes=sizes, path_dim=8).eval()
    plus = create_model("ours_clinical", omic_sizes=[*sizes, 3], path_dim=8).eval()
    omics = [torch.randn(s) for s in [*sizes, 3]]
    assert plus.sig_networks(omics).shape[0] == ours.sig_networks(omics[:3]).shape[0] + 1
    assert plus.n_groups == ours.n_groups == len(sizes)  # the pathology side is unchanged
    with torch.no_grad():
        assert torch.isfinite(plus(torch.randn(6, 8), omics).hazards).all()


def test_train_fold_writes_predictions_and_the_encoding(
    runs: dict[str, Path], cohort: dict[str, str]
) -> None:
    test_ids = set(_cases(cohort).test_ids)
    for out in runs.values():
        pred = pd.read_parquet(out / "predictions.parquet")
        assert set(pred["case_id"]) == test_ids and pred["risk"].notna().all()
        meta = json.loads((out / "meta.json").read_text())
        assert meta["clinical"]["numeric"] == ["age"]
        assert meta["clinical"]["categories"] == {"sex": ["female", "male", "missing"]}
        ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
        assert ckpt["meta"]["clinical"] == meta["clinical"]
        assert ckpt["meta"]["model_kwargs_resolved"]["omic_sizes"][-1] == 4  # age + 3 levels
    # the genomics are never withheld without the clinical block: no 'omic' scoring
    missing = pd.read_parquet(runs["ours_clinical"] / "predictions_missing.parquet")
    assert set(missing["withheld"]) == {"none", "path"}
    assert set(missing["modalities_used"]) == {"path+omic+clinical", "omic+clinical"}
    summary, _ = missing_modality_summary(
        missing, model_order=["ours_clinical"], cohort_order=["SYN"]
    )
    assert set(summary["scoring"]) == {"both", "omics only (path withheld)"}


def test_heatmap_scoring_reproduces_the_predicted_risk(
    runs: dict[str, Path], cohort: dict[str, str]
) -> None:
    pred = pd.read_parquet(runs["ours_clinical"] / "predictions.parquet").iloc[0]
    case = str(pred["case_id"])
    fold = load_fold_model(runs["ours_clinical"] / "checkpoint.pt", "ours_clinical", case)
    omics = case_omics(
        fold, cohort["omics_parquet"], cohort["families_json"], case, cohort["clinical_tsv"]
    )
    assert omics is not None and omics[-1].shape == (4,)
    panels, risk = score_case(fold, read_case_bag(cohort["bags_h5"], case), omics, 0)
    assert risk == pytest.approx(float(pred["risk"]), abs=1e-4)
    assert len(panels) == 7  # six gene families + the clinical token
    families = [*json.loads(Path(cohort["families_json"]).read_text())["families"], "clinical"]
    assert "attention_clinical" in panel_datasets(panels, families)[0]
    with pytest.raises(ValueError, match="reads clinical covariates"):
        case_omics(fold, cohort["omics_parquet"], cohort["families_json"], case)


def test_attribution_has_a_clinical_family(
    runs: dict[str, Path], cohort: dict[str, str], tmp_path: Path
) -> None:
    attribute_model(
        cohort="SYN", model_name="snn_clinical",
        checkpoints=[str(runs["snn_clinical"] / "checkpoint.pt")],
        omics_parquet=cohort["omics_parquet"], families_json=cohort["families_json"],
        bags_h5=None, out_dir=tmp_path, n_steps=16, top_genes=5, num_threads=1,
        clinical_tsv=cohort["clinical_tsv"],
    )  # fmt: skip
    families = pd.read_csv(tmp_path / "families.tsv", sep="\t").set_index("family")
    assert families.loc["clinical", "n_inputs"] == 4
    genes = pd.read_csv(tmp_path / "genes.tsv", sep="\t").set_index("column")
    assert genes.loc[["age", "sex_female"], "families"].tolist() == ["clinical", "clinical"]
    cases = pd.read_csv(tmp_path / "cases.tsv.gz", sep="\t")
    fams = cases[[c for c in cases.columns if c.startswith("family:")]].sum(axis=1)
    moved = cases["risk"] - cases["baseline_risk"]
    np.testing.assert_allclose(fams, moved, atol=0.05 * moved.abs().mean() + 1e-6)


def test_unknown_covariate_names_the_file_and_column(
    cohort: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"clinical\.tsv: no column\(s\) \['stage'\] for snn_cl"):
        run(cohort, tmp_path, "snn_clinical", epochs=1, clinical_covariates=["age", "stage"])


def test_tables_show_the_clinical_models_only_when_trained() -> None:
    folds = {
        "ours": {"A": [0.70, 0.72, 0.71]},
        "ours_clinical": {"A": [0.73, 0.74, 0.75]},
        "snn_clinical": {"A": [0.60, 0.61, 0.62]},
    }
    per_fold = _per_fold_models(folds)
    t1 = paper_table(
        per_fold, PAPER_TABLES["table1"], configured_models=list(folds), cohort_order=["A"]
    )
    t2 = paper_table(
        per_fold, PAPER_TABLES["table2"], configured_models=list(folds), cohort_order=["A"]
    )
    assert t1["display_name"].drop_duplicates().tolist() == ["SNN + clinical", "Ours"]
    assert t2["display_name"].drop_duplicates().tolist() == [
        "Ours (All components)",
        "Ours + clinical",
    ]
