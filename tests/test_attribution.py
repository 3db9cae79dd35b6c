"""Gene-family attribution: Captum Integrated Gradients of the real fold models' risk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_train import make_cohort, run  # tests/ is on sys.path (pytest rootdir import mode)
from test_workflow import _job_counts, copy_repo, snakemake

from mmsurv.attribution import attribute_model
from mmsurv.attribution.ig import attribute_fold, load_fold
from mmsurv.attribution.tables import family_table, gene_attributions, position_families

torch.set_num_threads(1)
FOLD = 0


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_cohort(tmp_path_factory.mktemp("attr_cohort"), n=40)


@pytest.fixture(scope="module")
def snn_run(cohort: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An snn trained on the fold's training cases: its run directory."""
    root = tmp_path_factory.mktemp("snn")
    run(cohort, root, "snn", fold=FOLD, epochs=2, out="run")
    return root / "run"


def _load(ckpt: Path, cohort: dict[str, str], model: str, **kw: str):
    return load_fold(
        ckpt, cohort="SYN", model_name=model, omics_parquet=cohort["omics_parquet"],
        families_json=cohort["families_json"], bags_h5=cohort["bags_h5"],
        device=torch.device("cpu"), **kw,
    )  # fmt: skip


def _attribute(ckpt: Path, cohort: dict[str, str], model: str, out: Path) -> dict:
    return attribute_model(
        cohort="SYN", model_name=model, checkpoints=[str(ckpt)],
        omics_parquet=cohort["omics_parquet"], families_json=cohort["families_json"],
        bags_h5=cohort["bags_h5"], out_dir=out, n_steps=32, top_genes=5, num_threads=1,
    )  # fmt: skip


def _check_completeness(run_dir: Path, out: Path) -> pd.DataFrame:
    """Each case's attributions sum to risk(case) - risk(baseline), and risk(case) is the risk
    the trained model wrote to predictions.parquet."""
    cases = pd.read_csv(out / "cases.tsv.gz", sep="\t", dtype={"case_id": str})
    genes = cases[[c for c in cases.columns if c.endswith(("_rnaseq", "_cnv"))]]
    moved = cases["risk"] - cases["baseline_risk"]
    assert moved.abs().mean() > 1e-3  # the cases are not all at the baseline
    np.testing.assert_allclose(genes.sum(axis=1), moved, atol=0.02 * moved.abs().mean())
    pred = pd.read_parquet(run_dir / "predictions.parquet").set_index("case_id")
    np.testing.assert_allclose(cases["risk"], pred.loc[cases["case_id"], "risk"], atol=1e-5)
    return cases


def test_snn_attributions_sum_to_the_risk_change_and_files_are_consistent(
    snn_run: Path, cohort: dict[str, str], tmp_path: Path
) -> None:
    summary = _attribute(snn_run / "checkpoint.pt", cohort, "snn", tmp_path)
    cases = _check_completeness(snn_run, tmp_path)
    splits = pd.read_csv(cohort["splits_tsv"], sep="\t", dtype={"case_id": str})
    assert set(cases["case_id"]) == set(splits.loc[splits.fold == FOLD, "case_id"])
    assert summary["converged"] and summary["n_steps"] == 32
    # per-family aggregation: families.tsv = means over cases of the per-case family sums,
    # and (one block per family) the family sums add up to the genes' attributions
    fams = pd.read_csv(tmp_path / "families.tsv", sep="\t").set_index("family")
    families = json.loads(Path(cohort["families_json"]).read_text())["families"]
    for fam, cols in families.items():
        per_case = cases[f"family:{fam}"]
        np.testing.assert_allclose(per_case, cases[cols].sum(axis=1), atol=1e-9)
        assert fams.loc[fam, "mean_attribution"] == pytest.approx(per_case.mean(), abs=1e-9)
        assert fams.loc[fam, "mean_abs_net"] == pytest.approx(per_case.abs().mean(), abs=1e-9)
        abs_sum = cases[cols].abs().sum(axis=1).mean()
        assert fams.loc[fam, "mean_abs_attribution"] == pytest.approx(abs_sum, abs=1e-9)
    genes = pd.read_csv(tmp_path / "genes.tsv", sep="\t")
    assert list(genes["rank"]) == list(range(1, len(genes) + 1))
    assert genes["mean_abs_attribution"].is_monotonic_decreasing
    top = genes.iloc[0]
    assert top["mean_abs_attribution"] == pytest.approx(cases[top["column"]].abs().mean())
    assert (tmp_path / "bars.png").stat().st_size > 10_000


def test_baseline_is_the_training_fold_mean_not_the_held_out_cases(
    cohort: dict[str, str], tmp_path: Path
) -> None:
    """Held-out cases far from the training cases move every held-out mean, not the baseline."""
    shifted = {k: str(tmp_path / Path(v).name) for k, v in cohort.items()}
    for k, v in cohort.items():
        shutil.copy(v, shifted[k])
    splits = pd.read_csv(cohort["splits_tsv"], sep="\t", dtype={"case_id": str})
    test_ids = list(splits.loc[splits.fold == FOLD, "case_id"])
    omics = pd.read_parquet(cohort["omics_parquet"])
    omics.loc[test_ids] += 10.0
    omics.to_parquet(shifted["omics_parquet"])
    run(shifted, tmp_path, "snn", fold=FOLD, epochs=1, out="run")
    fm = _load(tmp_path / "run" / "checkpoint.pt", shifted, "snn")
    fa = attribute_fold(fm, n_steps=8)
    families = json.loads(Path(cohort["families_json"]).read_text())["families"]
    columns = [c for cols in families.values() for c in cols]
    train = omics.loc[fm.train_ids, columns]
    expected = ((train - train.mean()) / train.std(ddof=0).replace(0, 1)).mean()
    np.testing.assert_allclose(fa.baseline, expected.to_numpy(), atol=1e-5)
    everyone = omics.loc[fm.train_ids + test_ids, columns]
    z_all = ((everyone - train.mean()) / train.std(ddof=0).replace(0, 1)).mean()
    assert np.abs(fa.baseline - z_all.to_numpy()).min() > 0.5  # held-out cases would shift it
    assert fa.case_ids == test_ids and not set(fm.train_ids) & set(test_ids)


def test_a_gene_the_model_cannot_see_gets_no_attribution(
    snn_run: Path, cohort: dict[str, str], tmp_path: Path
) -> None:
    families = json.loads(Path(cohort["families_json"]).read_text())["families"]
    columns = [c for cols in families.values() for c in cols]
    blind = columns.index("G2x0_rnaseq")
    ckpt = torch.load(snn_run / "checkpoint.pt", weights_only=True)
    ckpt["state_dict"]["fc_omic.0.0.weight"][:, blind] = 0.0  # SNN's first layer
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    _attribute(tmp_path / "checkpoint.pt", cohort, "snn", tmp_path / "out")
    genes = pd.read_csv(tmp_path / "out" / "genes.tsv", sep="\t").set_index("column")
    assert genes.loc["G2x0_rnaseq", "mean_abs_attribution"] < 1e-9
    assert genes.loc["G2x0_rnaseq", "rank"] == len(genes)
    assert (genes.drop(index="G2x0_rnaseq")["mean_abs_attribution"] > 1e-6).all()
    assert genes.loc["G2x0_rnaseq", "families"] == "fam2"


def test_family_sums_count_a_shared_column_in_each_family() -> None:
    families = {"a": ["x_rnaseq", "y_rnaseq"], "b": ["y_rnaseq", "z_cnv"]}
    attrs = np.array([[1.0, -2.0, 0.5, 4.0], [3.0, 1.0, -1.0, 0.0]])
    # one block per family: y_rnaseq is input 1 (family a) and input 2 (family b)
    blocks = list(families.values())
    pos = position_families(blocks, list(families), families)
    assert pos == {"a": [0, 1], "b": [2, 3]}
    genes = gene_attributions(attrs, blocks)
    assert list(genes.columns) == ["x_rnaseq", "y_rnaseq", "z_cnv"]
    np.testing.assert_allclose(genes["y_rnaseq"], [-1.5, 0.0])
    fams = family_table(attrs, pos).set_index("family")
    assert fams.loc["a", "mean_attribution"] == pytest.approx((-1.0 + 4.0) / 2)
    assert fams.loc["a", "mean_abs_attribution"] == pytest.approx((3.0 + 4.0) / 2)
    assert fams.loc["b", "mean_abs_net"] == pytest.approx((4.5 + 1.0) / 2)
    # one block of unique columns (concatenating models): y_rnaseq counts in a and in b
    unique = [["x_rnaseq", "y_rnaseq", "z_cnv"]]
    pos = position_families(unique, None, families)
    assert pos == {"a": [0, 1], "b": [1, 2]}
    fams = family_table(attrs[:, :3], pos).set_index("family")
    assert fams.loc["b", "mean_attribution"] == pytest.approx(((-2.0 + 0.5) + (1.0 - 1.0)) / 2)


def test_concatenating_model_on_unique_genes(cohort: dict[str, str], tmp_path: Path) -> None:
    """snn (concat_omics) under omic_input unique_genes: a column shared by two families is one
    input; completeness holds and the column counts in both families."""
    shared = {k: str(tmp_path / Path(v).name) for k, v in cohort.items()}
    for k, v in cohort.items():
        shutil.copy(v, shared[k])
    doc = json.loads(Path(cohort["families_json"]).read_text())
    doc["families"]["fam1"].append("G0x0_rnaseq")
    Path(shared["families_json"]).write_text(json.dumps(doc))
    run(shared, tmp_path, "snn", fold=FOLD, epochs=1, out="run", omic_input="unique_genes")
    assert json.loads((tmp_path / "run" / "meta.json").read_text())["omic_input"] == "unique_genes"
    summary = _attribute(tmp_path / "run" / "checkpoint.pt", shared, "snn", tmp_path / "out")
    assert summary["omic_input"] == "unique_genes"
    cases = _check_completeness(tmp_path / "run", tmp_path / "out")
    assert list(cases.columns).count("G0x0_rnaseq") == 1
    genes = pd.read_csv(tmp_path / "out" / "genes.tsv", sep="\t").set_index("column")
    assert genes.loc["G0x0_rnaseq", "families"] == "fam0,fam1"
    fam1 = doc["families"]["fam1"]
    np.testing.assert_allclose(cases["family:fam1"], cases[fam1].sum(axis=1), atol=1e-9)


def test_multimodal_model_keeps_the_bag_fixed(cohort: dict[str, str], tmp_path: Path) -> None:
    """mcat: the omics are attributed with each case's whole bag as in its predictions."""
    run(cohort, tmp_path, "mcat", fold=FOLD, epochs=1, out="run")
    _attribute(tmp_path / "run" / "checkpoint.pt", cohort, "mcat", tmp_path / "out")
    _check_completeness(tmp_path / "run", tmp_path / "out")


def test_missing_checkpoint_and_linear_floor_are_named(
    snn_run: Path, cohort: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "fold3" / "checkpoint.pt"
    with pytest.raises(FileNotFoundError, match=r"fold3/checkpoint\.pt.*model 'snn'"):
        _attribute(missing, cohort, "snn", tmp_path / "out")
    with pytest.raises(ValueError, match="'coxnet_omic' is not a deep model that reads omics"):
        _attribute(snn_run / "checkpoint.pt", cohort, "coxnet_omic", tmp_path / "out")
    with pytest.raises(ValueError, match="checkpoint of model 'snn', not 'mcat'"):
        _attribute(snn_run / "checkpoint.pt", cohort, "mcat", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_dry_run_plans_one_attribution_job_per_cohort_and_omics_model(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path)
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    config["training"]["models"] = ["snn", "attn_mil", "mcat", "coxnet_omic"]
    config["evaluation"]["km_model"] = "mcat"
    (repo / "mine.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(repo, "-n", "--configfile", "mine.yaml", "--quiet", "rules", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts["attribution"] == len(config["cohorts"]) * 2  # snn and mcat
