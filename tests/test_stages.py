"""Stage functions behind the Snakemake scripts (bags, evaluate, report), on small real files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from mmsurv.bags.data import BagStore, bag_attrs, read_splits
from mmsurv.bags.stage import build_case_bags, make_cohort_splits


def _feature_file(path: Path, n: int, *, weights: str = "random-init", dim: int = 8) -> Path:
    with h5py.File(path, "w") as h5:
        h5.create_dataset("features", data=np.full((n, dim), n, np.float32))
        h5.create_dataset("coords", data=np.zeros((n, 2), np.int64))
        h5.attrs["encoder"] = "resnet50_trunc"
        h5.attrs["weights"] = weights
    return path


def test_case_bags_concatenate_slides_in_sheet_order_and_keep_provenance(tmp_path: Path) -> None:
    files = [_feature_file(tmp_path / f"{s}.h5", n) for s, n in [("s1", 3), ("s2", 2), ("s3", 4)]]
    out = tmp_path / "bags.h5"
    build_case_bags(files, [("c1", "s2"), ("c1", "s1"), ("c2", "s3")], out)
    with BagStore(out) as bags:
        assert bags.n_patches("c1") == 5 and bags.n_patches("c2") == 4
        assert bags["c1"][:2, 0].tolist() == [2, 2]  # s2 first, as in the sheet
    assert bag_attrs(out)["weights"] == "random-init"


def test_case_bags_refuse_mixed_encoder_weights(tmp_path: Path) -> None:
    a = _feature_file(tmp_path / "s1.h5", 2)
    b = _feature_file(tmp_path / "s2.h5", 2, weights="imagenet.pth sha256:abc")
    with pytest.raises(ValueError, match="different `weights`"):
        build_case_bags([a, b], [("c1", "s1"), ("c2", "s2")], tmp_path / "bags.h5")
    assert not (tmp_path / "bags.h5").exists()


def test_case_bags_name_a_slide_without_features(tmp_path: Path) -> None:
    a = _feature_file(tmp_path / "s1.h5", 2)
    with pytest.raises(ValueError, match=r"no feature file for slide\(s\) \['s9'\]"):
        build_case_bags([a], [("c1", "s1"), ("c1", "s9")], tmp_path / "bags.h5")


@pytest.mark.parametrize("complete_cases", [True, False])
def test_splits_keep_only_cases_with_every_modality(tmp_path: Path, complete_cases: bool) -> None:
    """drop: complete cases only; keep_unimodal (complete_cases=False): slides or omics."""
    rng = np.random.default_rng(0)
    cases = [f"c{i:02d}" for i in range(30)]
    clinical = pd.DataFrame(
        {
            "case_id": cases,
            "survival_months": rng.uniform(1, 100, 30).round(1),
            "event": rng.integers(0, 2, 30),
        }
    )
    clinical.to_csv(tmp_path / "clinical.tsv", sep="\t", index=False)
    omics = pd.DataFrame({"TP53_rnaseq": rng.normal(size=28)}, index=pd.Index(cases[:28]))
    omics.index.name = "case_id"
    omics.to_parquet(tmp_path / "omics.parquet")
    slide_cases = cases[1:29] + ["c99"]  # c00: no slide; c28: no omics; c29: neither
    # c99 has a slide but no survival: never folded
    make_cohort_splits(
        clinical_tsv=tmp_path / "clinical.tsv",
        omics_parquet=tmp_path / "omics.parquet",
        slide_cases=slide_cases,
        out_tsv=tmp_path / "splits.tsv",
        n_folds=3,
        seed=0,
        complete_cases=complete_cases,
    )
    splits = read_splits(tmp_path / "splits.tsv")
    assert sorted(splits["case_id"]) == (cases[1:28] if complete_cases else cases[:29])
    assert sorted(splits["fold"].unique()) == [0, 1, 2]


def _predictions(tmp_path: Path, n: int = 60, folds: int = 3) -> list[Path]:
    """Out-of-fold prediction files whose risk tracks survival (plus noise)."""
    rng = np.random.default_rng(1)
    risk = rng.normal(size=n)
    months = rng.exponential(30 * np.exp(-risk)).round(2) + 0.5
    event = rng.uniform(size=n) < 0.6
    files = []
    for k in range(folds):
        idx = np.arange(n)[k::folds]
        frame = pd.DataFrame(
            {
                "case_id": [f"c{i:03d}" for i in idx],
                "fold": k,
                "risk": risk[idx] + rng.normal(scale=0.3, size=len(idx)),
                "survival_months": months[idx],
                "event": event[idx],
                "censorship": (~event[idx]).astype(int),
                "model": "ours",
                "cohort": "DEMO-X",
                "model_selection": "last_epoch",
                "encoder_weights": "random-init",
            }
        )
        files.append(tmp_path / f"fold{k}.parquet")
        frame.to_parquet(files[-1])
    return files


def test_km_figure_groups_add_up_and_stats_are_written(tmp_path: Path) -> None:
    import json

    from mmsurv.evaluate.stage import km_figure_from_predictions

    files = _predictions(tmp_path)
    stats = km_figure_from_predictions(
        files,
        cohort="DEMO-X",
        out_png=tmp_path / "km.png",
        out_pdf=tmp_path / "km.pdf",
        out_json=tmp_path / "km.json",
        n_perm=200,
    )
    saved = json.loads((tmp_path / "km.json").read_text())
    assert saved["n_low"] + saved["n_high"] == 60 == saved["n"]
    assert saved["encoder_weights"] == "random-init"
    assert 0 < saved["p_maxstat_perm"] <= 1 and 0 < saved["p_maxstat_lau92"] <= 1
    assert saved["cutpoint"] == stats["cutpoint"]
    assert (tmp_path / "km.png").stat().st_size > 10_000 and (tmp_path / "km.pdf").exists()


def test_km_figure_refuses_a_case_scored_twice(tmp_path: Path) -> None:
    from mmsurv.evaluate.stage import km_figure_from_predictions

    files = _predictions(tmp_path)
    with pytest.raises(ValueError, match="scored by more than one fold"):
        km_figure_from_predictions(
            [*files, files[0]],
            cohort="DEMO-X",
            out_png=tmp_path / "km.png",
            out_pdf=tmp_path / "km.pdf",
            out_json=tmp_path / "km.json",
            n_perm=0,
        )
    assert not (tmp_path / "km.json").exists()


def test_cindex_tables_and_run_summary_from_predictions(tmp_path: Path) -> None:
    from mmsurv.evaluate import km_figure_from_predictions, write_cindex_outputs
    from mmsurv.report import write_run_summary

    files = _predictions(tmp_path)
    tables = tmp_path / "tables"
    per_fold = write_cindex_outputs(
        files,
        folds_tsv=tables / "folds.tsv",
        out_csv=tables / "cindex.csv",
        out_md=tables / "cindex.md",
        model_order=["ours"],
        cohort_order=["DEMO-X"],
    )
    assert len(per_fold) == 3 and per_fold["cindex"].between(0, 1).all()
    md = (tables / "cindex.md").read_text()
    assert "random-init" in md and "last_epoch" in md
    km = tmp_path / "DEMO-X" / "km_stats.json"
    km_figure_from_predictions(
        files,
        cohort="DEMO-X",
        out_png=tmp_path / "k.png",
        out_pdf=tmp_path / "k.pdf",
        out_json=km,
        n_perm=0,
    )
    splits = tmp_path / "DEMO-X" / "splits.tsv"
    pd.DataFrame({"case_id": ["a", "b"], "fold": [0, 1]}).to_csv(splits, sep="\t", index=False)
    config = {
        "run_name": "t",
        "data_source": "demo",
        "features": {"encoder": "resnet50_trunc", "weights": None},
        "training": {
            "model_selection": "last_epoch",
            "epochs": 2,
            "seeds": [1],
            "models": ["ours"],
        },
        "splits": {"n_folds": 3, "seed": 1},
    }
    out = tmp_path / "run_summary.md"
    write_run_summary(
        out, config=config, cindex_csv=tables / "cindex.csv", km_stats=[km], splits=[splits]
    )
    text = out.read_text()
    assert "**random-init**" in text and "| DEMO-X | 2 |" in text and "p_maxstat_lau92" in text
    assert "folds: 3 stratified (seed 1)" in text
    # each splits file's SHA-256, so a run's folds can be cited and checked
    import hashlib

    assert f"`{hashlib.sha256(Path(splits).read_bytes()).hexdigest()}`" in text
    # a genomics-only run with the user's folds says so instead of naming an unused encoder
    config["training"]["models"] = ["snn", "snn_trans"]
    config["splits"]["source"] = "user"
    write_run_summary(
        out, config=config, cindex_csv=tables / "cindex.csv", km_stats=[km], splits=[splits]
    )
    text = out.read_text()
    assert "random-init" not in text and "encoder: not used" in text
    assert "folds: 3 from the user's split CSVs" in text
    # the cases left out and the missing omics cells are in the summary (and so the report)
    dropped = tmp_path / "DEMO-X" / "dropped_cases.tsv"
    dropped.write_text("case_id\treason\nc7\tno slides\n")
    missing = tmp_path / "DEMO-X" / "omics_missing.json"
    missing.write_text(
        '{"policy": "mean", "n_cells": 3, "n_cases": 2, "n_columns": 1, '
        '"by_case": {"a": 1, "b": 2}, "by_column": {"TP53_cnv": 3}, "dropped_cases": []}'
    )
    write_run_summary(
        out,
        config=config,
        cindex_csv=tables / "cindex.csv",
        km_stats=[km],
        splits=[splits],
        dropped=[dropped],
        omics_missing=[missing],
    )
    text = out.read_text()
    assert "## Cases left out of the folds" in text and "| DEMO-X | no slides | 1 | c7 |" in text
    assert "| DEMO-X | 3 | 2 | 1 | imputed (training-fold mean) | b (2), a (1) |" in text


def test_std_ddof_reaches_the_tables_and_the_summary_lists_the_config(tmp_path: Path) -> None:
    """evaluation.std_ddof 0 (MCAT's np.std) changes the std and says so; the summary lists keys."""
    from mmsurv.evaluate import write_cindex_outputs
    from mmsurv.report import write_run_summary

    files = _predictions(tmp_path)
    out = {}
    for ddof in (1, 0):
        d = tmp_path / f"ddof{ddof}"
        per_fold = write_cindex_outputs(
            files,
            folds_tsv=d / "folds.tsv",
            out_csv=d / "cindex.csv",
            out_md=d / "cindex.md",
            model_order=["ours"],
            cohort_order=["DEMO-X"],
            ddof=ddof,
        )
        out[ddof] = pd.read_csv(d / "cindex.csv").iloc[0]
        assert out[ddof]["std"] == pytest.approx(np.std(per_fold["cindex"], ddof=ddof), abs=1e-6)
        kind = "sample std" if ddof else "population std"
        assert f"mean ± {kind} (ddof={ddof}) over 3 folds" in (d / "cindex.md").read_text()
    assert out[0]["std"] < out[1]["std"]

    splits = tmp_path / "DEMO-X" / "splits.tsv"
    splits.parent.mkdir()
    pd.DataFrame({"case_id": ["a"], "fold": [0]}).to_csv(splits, sep="\t", index=False)
    km = tmp_path / "km.json"
    km.write_text(
        '{"cohort": "DEMO-X", "model": "ours", "cutpoint": 0, "statistic": 1, '
        '"p_maxstat_lau92": 1, "p_maxstat_perm": 1, "logrank_p": 1, "n_low": 1, "n_high": 1}'
    )
    config = {
        "data_source": "demo",
        "features": {"encoder": "resnet50_trunc", "weights": None},
        "training": {"model_selection": "last_epoch", "epochs": 2, "seeds": [1], "models": ["snn"]},
        "splits": {"n_folds": 3, "seed": 1},
    }
    rows = [["training.epochs", "20", "default"], ["byo.tables", '{"A": "a|b"}', "user"]]
    summary = tmp_path / "run_summary.md"
    write_run_summary(
        summary,
        config=config,
        cindex_csv=tmp_path / "ddof0" / "cindex.csv",
        km_stats=[km],
        splits=[splits],
        effective_config=rows,
    )
    text = summary.read_text()
    assert "## Effective configuration" in text
    assert "| `training.epochs` | `20` | default |" in text
    assert '| `byo.tables` | `{"A": "a\\|b"}` | user |' in text  # a pipe cannot break the table


def test_dropped_cases_are_listed_with_reason_on_the_console_and_in_the_summary(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Cases the folds leave out: dropped_cases.tsv, one console line, run_summary.md."""
    import json

    from mmsurv.report.stage import dropped_lines, omics_missing_lines

    rng = np.random.default_rng(0)
    cases = [f"c{i:02d}" for i in range(12)]
    clinical = pd.DataFrame(
        {"case_id": cases, "survival_months": rng.uniform(1, 100, 12), "event": [1, 0] * 6}
    )
    cohort = tmp_path / "DEMO-X"
    cohort.mkdir()
    clinical.to_csv(cohort / "clinical.tsv", sep="\t", index=False)
    omics = pd.DataFrame({"TP53_rnaseq": rng.normal(size=9)}, index=pd.Index(cases[:9]))
    omics.index.name = "case_id"
    omics.to_parquet(cohort / "omics.parquet")
    missing = {"policy": "drop_case", "n_cells": 2, "n_cases": 1, "n_columns": 1,
               "by_case": {"c10": 2}, "by_column": {"TP53_rnaseq": 2},
               "dropped_cases": ["c10"]}  # fmt: skip
    (cohort / "omics_missing.json").write_text(json.dumps(missing))
    make_cohort_splits(
        clinical_tsv=cohort / "clinical.tsv",
        omics_parquet=cohort / "omics.parquet",
        slide_cases=cases[1:11] + ["c99"],  # c00, c11: no slide; c99: no survival
        out_tsv=cohort / "splits.tsv",
        out_dropped=cohort / "dropped_cases.tsv",
        omics_missing_json=cohort / "omics_missing.json",
        n_folds=2,
        seed=0,
    )
    dropped = pd.read_csv(cohort / "dropped_cases.tsv", sep="\t").set_index("case_id")["reason"]
    assert dropped.to_dict() == {
        "c00": "no slides",
        "c09": "no omics",
        "c10": "omics values missing (drop_case)",
        "c11": "no omics; no slides",
        "c99": "no survival; no omics",
    }
    console = capfd.readouterr().err.splitlines()
    line = [s for s in console if "left out of the folds" in s]
    assert len(line) == 1 and "cohort DEMO-X: 5 case(s)" in line[0], console
    text = "\n".join(dropped_lines([cohort / "dropped_cases.tsv"]))
    assert "| DEMO-X | no slides | 1 | c00 |" in text
    assert "| DEMO-X | no omics; no slides | 1 | c11 |" in text
    text = "\n".join(omics_missing_lines([cohort / "omics_missing.json"]))
    assert "| DEMO-X | 2 | 1 | 1 | cases dropped | c10 (2) | TP53_rnaseq (2) |" in text
