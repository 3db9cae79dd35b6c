"""A held-out fold without an event: the splits step warns, the tables show NaN and a † note."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmsurv.bags.stage import make_cohort_splits, warn_undefined_folds
from mmsurv.evaluate import write_cindex_outputs, write_metrics_outputs, write_paper_tables
from mmsurv.evaluate.cindex_tables import (
    cindex_wide,
    fold_cindex,
    summarize_cindex,
    undefined_fold_notes,
)

N_BINS = 4
NOTE_X = (
    "† DEMO-X: fold 1 has no event among its 12 held-out cases, so its c-index is undefined "
    "(NaN in the per-fold table); mean ± std over the other 2 folds"
)


# --------------------------------------------------------------------------------------------
# the splits step
# --------------------------------------------------------------------------------------------


def _cohort_files(tmp_path: Path, events: list[int]) -> tuple[Path, Path, list[str]]:
    """clinical.tsv and omics.parquet for len(events) cases, every case with every modality."""
    n = len(events)
    cases = [f"c{i:02d}" for i in range(n)]
    pd.DataFrame(
        {"case_id": cases, "survival_months": np.arange(1.0, n + 1), "event": events}
    ).to_csv(tmp_path / "clinical.tsv", sep="\t", index=False)
    omics = pd.DataFrame({"TP53_rnaseq": np.zeros(n)}, index=pd.Index(cases, name="case_id"))
    omics.to_parquet(tmp_path / "omics.parquet")
    return tmp_path / "clinical.tsv", tmp_path / "omics.parquet", cases


def _splits(tmp_path: Path, events: list[int], n_folds: int, **kw) -> pd.DataFrame:
    clinical, omics, cases = _cohort_files(tmp_path, events)
    return make_cohort_splits(
        clinical_tsv=clinical,
        omics_parquet=omics,
        slide_cases=cases,
        out_tsv=tmp_path / "DEMO-X" / "splits.tsv",
        n_folds=n_folds,
        seed=0,
        **kw,
    )


def test_splits_warn_for_each_held_out_fold_without_an_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = [1] + [0] * 8  # one event: two of three folds hold none out
    with caplog.at_level(logging.WARNING, logger="mmsurv.bags.stage"):
        splits = _splits(tmp_path, events, n_folds=3)
    event_fold = int(splits.loc[splits["case_id"] == "c00", "fold"].iloc[0])
    empty = sorted({0, 1, 2} - {event_fold})
    warned = [r.getMessage() for r in caplog.records if "c-index is undefined" in r.message]
    assert warned == [
        f"cohort DEMO-X fold {k}: no event among its 3 held-out cases; its c-index is "
        "undefined (NaN in the tables)"
        for k in empty
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.message in warned)
    # the cohort name given by the rule wins over the folder name
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmsurv.bags.stage"):
        _splits(tmp_path, events, n_folds=3, cohort="TCGA-BLCA")
    assert sum("cohort TCGA-BLCA fold" in r.message for r in caplog.records) == 2


def test_splits_with_an_event_in_every_fold_do_not_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mmsurv.bags.stage"):
        _splits(tmp_path, [1, 0] * 6, n_folds=3)
    assert not [r for r in caplog.records if "c-index is undefined" in r.message]


def test_warn_undefined_folds_also_names_a_fold_without_a_comparable_pair(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clinical = pd.DataFrame(
        {"survival_months": [1.0, 2.0, 3.0, 4.0, 5.0, 9.0], "event": [1, 0, 0, 1, 0, 1]},
        index=pd.Index([f"c{i}" for i in range(6)], name="case_id"),
    ).astype({"event": bool})
    splits = pd.DataFrame({"case_id": clinical.index, "fold": [0, 0, 1, 1, 2, 2]})
    # fold 0: the death at 1 precedes the censoring at 2 (defined); fold 1: the only death (4)
    # is after the censoring at 3; fold 2: the only death (9) is the last time
    with caplog.at_level(logging.WARNING, logger="mmsurv.bags.stage"):
        assert warn_undefined_folds(splits, clinical, "DEMO-Y") == [1, 2]
    assert [r.getMessage() for r in caplog.records] == [
        f"cohort DEMO-Y fold {k}: no comparable pair among its 2 held-out cases (no event "
        "precedes another time); its c-index is undefined (NaN in the tables)"
        for k in (1, 2)
    ]


def test_splits_name_cohort_n_folds_and_cases_when_folds_outnumber_cases(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        _splits(tmp_path, [1, 0, 1], n_folds=5)
    msg = str(err.value)
    assert msg.startswith("cohort DEMO-X: splits.n_folds=5 but only 3 case(s) have ")
    assert "lower splits.n_folds to at most 3 or add cases" in msg
    assert not (tmp_path / "DEMO-X" / "splits.tsv").exists()


# --------------------------------------------------------------------------------------------
# the tables
# --------------------------------------------------------------------------------------------


def _predictions(no_event: set[tuple[str, int]], n: int = 36, n_folds: int = 3) -> pd.DataFrame:
    """Out-of-fold predictions of mcat and ours on DEMO-X/DEMO-Y; ``no_event`` folds censored."""
    rng = np.random.default_rng(5)
    rows = []
    for cohort in ("DEMO-X", "DEMO-Y"):
        t = np.round(rng.exponential(25, n), 2) + 0.5
        e = rng.random(n) < 0.7
        folds = np.arange(n) % n_folds
        for k in range(n_folds):
            if (cohort, k) in no_event:
                e[folds == k] = False
            elif not e[folds == k].any():
                e[np.flatnonzero(folds == k)[0]] = True
        for model, noise in (("mcat", 1.0), ("ours", 0.3)):
            logits = np.log(t)[:, None] - 3 + rng.normal(0, noise, (n, N_BINS))
            surv = np.cumprod(1 - 1 / (1 + np.exp(logits)), axis=1)
            for i in range(n):
                rows.append(
                    {
                        "case_id": f"{cohort}-{i:03d}",
                        "fold": int(folds[i]),
                        "risk": -float(surv[i].sum()),
                        **{f"surv_{j}": float(surv[i, j]) for j in range(N_BINS)},
                        "survival_months": float(t[i]),
                        "event": bool(e[i]),
                        "censorship": int(not e[i]),
                        "model": model,
                        "cohort": cohort,
                        "model_selection": "last_epoch",
                        "encoder_weights": "none",
                    }
                )
    return pd.DataFrame(rows)


def _files(tmp_path: Path, preds: pd.DataFrame) -> list[Path]:
    """One predictions.parquet + meta.json (bin edges) per cohort × model × fold."""
    files = []
    for (cohort, model, fold), sub in preds.groupby(["cohort", "model", "fold"]):
        d = tmp_path / cohort / "train" / model / f"fold{fold}"
        d.mkdir(parents=True)
        sub.to_parquet(d / "predictions.parquet")
        t = preds.loc[(preds["cohort"] == cohort) & (preds["fold"] != fold), "survival_months"]
        edges = [0.0, *np.quantile(t, [0.25, 0.5, 0.75]).tolist(), float(t.max()) + 1]
        meta = {"cohort": cohort, "model": model, "fold": int(fold), "bin_edges": edges}
        (d / "meta.json").write_text(json.dumps(meta))
        files.append(d / "predictions.parquet")
    return files


def _cindex_outputs(tmp_path: Path, files: list[Path]) -> pd.DataFrame:
    out = tmp_path / "tables"
    return write_cindex_outputs(
        files,
        folds_tsv=out / "cindex_folds.tsv",
        out_csv=out / "cindex.csv",
        out_md=out / "cindex.md",
        model_order=["mcat", "ours"],
        cohort_order=["DEMO-X", "DEMO-Y"],
        out_prov=out / "cindex.provenance.rst",
    )


def test_cindex_table_gives_a_fold_without_an_event_nan_and_a_note(tmp_path: Path) -> None:
    preds = _predictions({("DEMO-X", 1)})
    per_fold = _cindex_outputs(tmp_path, _files(tmp_path, preds))  # raised before
    out = tmp_path / "tables"
    tsv = pd.read_csv(out / "cindex_folds.tsv", sep="\t", keep_default_na=False)
    x1 = tsv[(tsv["cohort"] == "DEMO-X") & (tsv["fold"] == 1)]
    assert (x1["cindex"] == "NaN").all() and (x1["n_events"] == 0).all() and len(x1) == 2
    assert per_fold["cindex"].isna().sum() == 2
    csv = pd.read_csv(out / "cindex.csv")
    x = csv[csv["cohort"] == "DEMO-X"].set_index("model")
    assert (x["n_folds"] == 2).all() and (csv.loc[csv["cohort"] == "DEMO-Y", "n_folds"] == 3).all()
    ours = per_fold[(per_fold["cohort"] == "DEMO-X") & (per_fold["model"] == "ours")]["cindex"]
    assert x.loc["ours", "mean"] == pytest.approx(ours.dropna().mean(), abs=1e-6)
    assert x.loc["ours", "std"] == pytest.approx(ours.dropna().std(ddof=1), abs=1e-6)
    md = (out / "cindex.md").read_text()
    assert md.count("†") == 3  # the two DEMO-X cells and the note
    assert f"- {NOTE_X}\n" in md
    assert "over 2–3 folds" in md  # the general note counts the defined folds
    assert "DEMO-Y:" not in md


def test_paper_tables_from_a_per_fold_tsv_with_nan(tmp_path: Path) -> None:
    preds = _predictions({("DEMO-X", 1)})
    _cindex_outputs(tmp_path, _files(tmp_path, preds))
    out = tmp_path / "tables"
    paths = {k: {e: out / f"{k}.{e}" for e in ("csv", "md", "tex")} for k in ("table1", "table2")}
    result = write_paper_tables(
        out / "cindex_folds.tsv",
        outputs=paths,
        configured_models=["mcat", "ours"],
        cohort_order=["DEMO-X", "DEMO-Y"],
    )
    t1 = result["table1"].set_index(["model", "cohort"])
    assert t1.loc[("ours", "DEMO-X"), "n_folds"] == 2 and t1.loc[("ours", "DEMO-Y"), "n_folds"] == 3
    assert np.isfinite(t1["mean"]).all() and set(t1["rank"]) == {1, 2}
    md = paths["table1"]["md"].read_text()
    assert f"- {NOTE_X}\n" in md
    row = next(line for line in md.splitlines() if line.startswith("| MCAT |"))
    assert row.count("†") == 1 and "†" in row.split(" | ")[3]  # DEMO-X, not DEMO-Y
    tex = paths["table1"]["tex"].read_text()
    assert tex.count(r"$^{\dagger}$") == 3 and "†" not in tex
    assert r"$^{\dagger}$ DEMO-X: fold 1 has no event among its 12 held-out cases" in tex
    assert "†" in paths["table2"]["md"].read_text()  # ours only


def test_metrics_table_notes_the_fold_and_keeps_the_pooled_cindex(tmp_path: Path) -> None:
    preds = _predictions({("DEMO-X", 1)})
    out = tmp_path / "tables"
    summary = write_metrics_outputs(
        _files(tmp_path, preds),
        out_csv=out / "metrics.csv",
        out_md=out / "metrics.md",
        folds_tsv=out / "metrics_folds.tsv",
        model_order=["mcat", "ours"],
        cohort_order=["DEMO-X", "DEMO-Y"],
        n_bootstrap=40,
    )
    pooled = summary[summary["metric"] == "cindex_pooled"]
    assert np.isfinite(pooled[["value", "ci_low", "ci_high"]].to_numpy()).all()
    x = summary[(summary["cohort"] == "DEMO-X") & (summary["metric"] != "cindex_pooled")]
    assert (x["n_folds_defined"] <= 2).all()
    folds = pd.read_csv(out / "metrics_folds.tsv", sep="\t")
    assert folds.loc[(folds["cohort"] == "DEMO-X") & (folds["fold"] == 1), "value"].isna().all()
    md = (out / "metrics.md").read_text()
    assert (
        "- † DEMO-X: fold 1 has no event among its 12 held-out cases, so td-AUC and IBS are "
        "undefined there (NaN in the per-fold TSV); mean ± std over the other folds, shown "
        "(k/n); the pooled c-index uses every case\n"
    ) in md
    x_part, y_part = md.split("### DEMO-Y")
    ours = next(line for line in x_part.splitlines() if line.startswith("| Ours |"))
    assert ours.count("†") == N_BINS  # three td-AUC cells and the IBS, not the pooled c-index
    assert "| Ours |" in y_part and "†" not in y_part.split("\n- ")[0]


def test_a_cohort_without_any_defined_fold_and_a_fold_without_comparable_pairs() -> None:
    preds = _predictions({("DEMO-Y", 0), ("DEMO-Y", 1), ("DEMO-Y", 2)})
    # DEMO-X fold 2: a single death, at the fold's last time: no comparable pair
    x2 = (preds["cohort"] == "DEMO-X") & (preds["fold"] == 2)
    last = preds.loc[x2, "survival_months"].max()
    preds.loc[x2, "event"] = preds.loc[x2, "survival_months"] == last
    per_fold = fold_cindex(preds)
    assert per_fold.loc[per_fold["cohort"] == "DEMO-Y", "cindex"].isna().all()
    assert (
        per_fold.loc[(per_fold["cohort"] == "DEMO-X"), "cindex"].isna().tolist()
        == [
            False,
            False,
            True,
        ]
        * 2
    )
    summary = summarize_cindex(per_fold)
    y = summary[summary["cohort"] == "DEMO-Y"]
    assert y["mean"].isna().all() and (y["n_folds"] == 0).all() and (y["cell"] == "—†").all()
    wide = cindex_wide(summary, markup=True)  # ranking a column of NaN means does not fail
    assert wide["DEMO-Y"].tolist() == ["—†", "—†"]
    assert wide["DEMO-X"].str.endswith(("†", "†**", "†</u>")).all()
    notes = undefined_fold_notes(per_fold)
    assert notes[0] == (
        "† DEMO-X: fold 2 has no comparable pair among its 12 held-out cases (no event precedes "
        "another time), so its c-index is undefined (NaN in the per-fold table); mean ± std "
        "over the other 2 folds"
    )
    assert notes[1].startswith(
        "† DEMO-Y: fold 0 has no event among its 12 held-out cases, fold 1 has no event among "
        "its 12 held-out cases, fold 2 has no event among its 12 held-out cases, so their "
        "c-index is undefined"
    )
    assert notes[1].endswith("; no fold is left for mean ± std (—)")
    assert undefined_fold_notes(per_fold.assign(cindex=0.5)) == []
