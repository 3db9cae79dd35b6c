"""Epoch selection on the held-out fold is refused, unless named best_test_epoch_leaky."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_train import make_cohort, run  # tests/ is on sys.path (rootdir imports)
from test_workflow import copy_repo, snakemake

from mmsurv.config import LEAKY_SELECTION, MODEL_SELECTIONS, check_training_keys
from mmsurv.evaluate.stage import (
    km_figure_from_predictions,
    write_cindex_outputs,
    write_metrics_outputs,
    write_paper_tables,
)
from mmsurv.training.params import resolve_params


@pytest.mark.parametrize(
    "value", ["best_test_epoch", "best_epoch", "best_val_epoch", "early_stopping"]
)
def test_held_out_selection_is_refused_naming_the_key(value: str) -> None:
    with pytest.raises(ValueError) as err:
        check_training_keys({"training": {"model_selection": value}})
    msg = str(err.value)
    assert f"training.model_selection={value!r}" in msg
    assert all(v in msg for v in MODEL_SELECTIONS) and "inflates" in msg
    assert LEAKY_SELECTION in msg
    with pytest.raises(ValueError, match=r"training\.per_model\.snn\.model_selection"):
        check_training_keys({"training": {"per_model": {"snn": {"model_selection": value}}}})
    with pytest.raises(ValueError, match="inflates"):  # train_fold's own check, same message
        resolve_params({"model_selection": value})
    for ok in MODEL_SELECTIONS:
        check_training_keys({"training": {"model_selection": ok, "seeds": [1]}})


def test_training_seed_is_refused_with_its_replacement() -> None:
    with pytest.raises(ValueError, match=r"^training\.seed was replaced by training\.seeds: \[7\]"):
        check_training_keys({"training": {"seed": 7}})


def test_the_workflow_parse_stops_on_a_leaky_name(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path)
    (repo / "bad.yaml").write_text(yaml.safe_dump({"training": {"model_selection": "best_epoch"}}))
    proc = snakemake(repo, "-n", "--configfile", "config/config.yaml", "bad.yaml", timeout=300)
    assert proc.returncode != 0
    assert "training.model_selection='best_epoch' is not allowed" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def leaky_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """snn trained with best_test_epoch_leaky on 2 folds x 2 seeds of a tiny cohort."""
    root = tmp_path_factory.mktemp("leaky")
    cohort = make_cohort(root / "cohort", n=30, n_folds=3)
    files = []
    for seed in (1, 2):
        for fold in (0, 1):
            out = f"train/snn/seed{seed}/fold{fold}"
            run(cohort, root, "snn", fold=fold, seed=seed, out=out, epochs=4,
                model_selection=LEAKY_SELECTION)  # fmt: skip
            files.append(root / out / "predictions.parquet")
    return root, files


def test_leaky_training_records_both_cindices(
    leaky_runs: tuple[Path, list[Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, files = leaky_runs
    meta = json.loads((files[0].parent / "meta.json").read_text())
    leaky = meta["leaky"]
    assert meta["model_selection"] == LEAKY_SELECTION and meta["seed"] == 1
    assert leaky["selected_cindex"] == pytest.approx(meta["test_cindex"])
    assert leaky["selected_cindex"] >= leaky["last_epoch_cindex"]
    assert leaky["gap"] == pytest.approx(leaky["selected_cindex"] - leaky["last_epoch_cindex"])
    assert leaky["selected_epoch"] == meta["selected_epoch"]
    log = pd.read_csv(files[0].parent / "train_log.tsv", sep="\t")
    assert log["heldout_cindex"].iloc[-1] == pytest.approx(leaky["last_epoch_cindex"])
    assert log["heldout_cindex"].max() == pytest.approx(leaky["selected_cindex"])
    pred = pd.read_parquet(files[0])
    assert (pred["model_selection"] == LEAKY_SELECTION).all() and (pred["seed"] == 1).all()
    assert pred["last_epoch_cindex"].iloc[0] == pytest.approx(leaky["last_epoch_cindex"])
    # the job log says it, with both c-indices
    cohort = make_cohort(tmp_path / "c", n=30, n_folds=3)
    with caplog.at_level(logging.INFO, logger="mmsurv.training.train"):
        run(cohort, tmp_path, "snn", epochs=2, model_selection=LEAKY_SELECTION)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "ON THE HELD-OUT FOLD (leaky)" in text and "at the last epoch, gap" in text


def test_every_table_says_leaky_and_prints_the_gap(
    leaky_runs: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    _, files = leaky_runs
    t = tmp_path
    per_run = write_cindex_outputs(
        files, folds_tsv=t / "folds.tsv", out_csv=t / "c.csv", out_md=t / "c.md",
        model_order=["snn"], cohort_order=["SYN"], out_prov=t / "c.rst",
    )  # fmt: skip
    assert len(per_run) == 4 and "last_epoch_cindex" in per_run.columns
    md = (t / "c.md").read_text()
    gap = per_run["cindex"].mean() - per_run["last_epoch_cindex"].mean()
    assert "leaky: epochs chosen on the held-out fold" in md
    assert f"gap {gap:+.3f} (over 4 runs)" in md and "2 folds x 2 seeds = 4 runs" in md
    assert "leaky" in (t / "c.csv").read_text() and "**Leaky:**" in (t / "c.rst").read_text()
    out = {k: {e: t / f"{k}.{e}" for e in ("csv", "md", "tex")} for k in ("table1", "table2")}
    write_paper_tables(
        t / "folds.tsv", outputs=out, configured_models=["snn"], cohort_order=["SYN"]
    )
    for ext in ("csv", "md", "tex"):
        assert "leaky" in out["table1"][ext].read_text(), ext
    assert "gap" in out["table1"]["md"].read_text()
    assert "(leaky: epochs chosen on the held-out fold)" in out["table1"]["tex"].read_text()
    write_metrics_outputs(
        files, out_csv=t / "m.csv", out_md=t / "m.md", folds_tsv=t / "mf.tsv",
        model_order=["snn"], cohort_order=["SYN"], n_bootstrap=10,
    )  # fmt: skip
    assert "leaky" in (t / "m.csv").read_text() and "gap" in (t / "m.md").read_text()
    assert set(pd.read_csv(t / "mf.tsv", sep="\t")["seed"]) == {1, 2}
    stats = km_figure_from_predictions(
        files, cohort="SYN", out_png=t / "km.png", out_pdf=t / "km.pdf", out_json=t / "km.json",
        n_perm=10, out_prov=t / "km.rst",
    )  # fmt: skip
    assert stats["leaky"] and "**Leaky:**" in (t / "km.rst").read_text()
