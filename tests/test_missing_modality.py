"""Missing-modality inference: withheld inputs, modality dropout, predictions_missing, table."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmsurv.evaluate.missing_table import (
    SCORINGS,
    missing_modality_summary,
    missing_modality_wide,
    write_missing_modality_table,
)
from mmsurv.model_catalog import MODEL_INPUTS
from mmsurv.models import create_model
from mmsurv.training.dataset import SurvivalDataset
from mmsurv.training.loop import StepConfig, train_one_epoch
from mmsurv.training.modality import draw_withheld, withhold

sys.path.insert(0, str(Path(__file__).parent))
from test_train import make_cohort, run  # noqa: E402
from test_workflow import _job_counts, copy_repo, snakemake  # noqa: E402

MULTIMODAL = sorted(m for m, inputs in MODEL_INPUTS.items() if {"path", "omic"} <= inputs)
SIZES = [3, 4, 5, 3, 2, 4]
DIM = 16


@pytest.mark.parametrize("name", MULTIMODAL)
def test_forward_with_a_modality_withheld(name: str) -> None:
    """(a) Finite (1, n_bins) outputs with either input withheld, and different from both."""
    torch.manual_seed(0)
    model = create_model(name, n_bins=4, path_dim=DIM, omic_sizes=SIZES).eval()
    path, omics = torch.randn(9, DIM), [torch.randn(s) for s in SIZES]
    with torch.no_grad():
        both = model(path, omics)
        outs = {"path": model(None, omics), "omic": model(path, None)}
    for which, out in outs.items():
        assert out.hazards.shape == (1, 4) and torch.isfinite(out.surv).all(), which
        assert torch.isfinite(out.aux_loss)
        assert not torch.allclose(out.surv, both.surv), (
            f"{name}: withholding {which} changed nothing"
        )
    # training with a token: it gets a gradient
    model.train()
    out = model(None, omics)
    out.hazards.sum().backward()
    assert model.missing_path.grad is not None and model.missing_path.grad.abs().sum() > 0


def test_modality_dropout_draws() -> None:
    """(b) p = 0 draws nothing; p > 0 withholds ~p of the steps, half each, never both."""
    assert draw_withheld(50, 0.0, seed=3, epoch=0) == [None] * 50
    draws = draw_withheld(20000, 0.4, seed=3, epoch=1)
    n_path, n_omic = draws.count("path"), draws.count("omic")
    assert abs((n_path + n_omic) / 20000 - 0.4) < 0.02
    assert abs(n_path / 20000 - 0.2) < 0.015 and abs(n_omic / 20000 - 0.2) < 0.015
    assert set(draws) <= {None, "path", "omic"}  # one value per case: never both
    assert draws == draw_withheld(20000, 0.4, seed=3, epoch=1)  # seeded
    assert draws != draw_withheld(20000, 0.4, seed=4, epoch=1)
    p, o = torch.ones(2, 3), [torch.ones(2)]
    assert withhold(p, o, None) == (p, o) and withhold(p, o, "path") == (None, o)
    assert withhold(p, o, "omic") == (p, None)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        draw_withheld(3, 1.0, seed=0, epoch=0)


class _Recorder(torch.nn.Module):
    """Records which inputs each training step got; returns a trainable constant output."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1, 4))
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, path, omics):  # noqa: ANN001, ANN201
        from mmsurv.models._layers import ModelOutput

        self.calls.append((path is not None, omics is not None))
        return ModelOutput.from_logits(self.w)


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_train_one_epoch_withholds_inputs(p: float) -> None:
    """(b) A step passes None for the withheld input; p = 0 leaves the batches as they were."""
    n = 400
    ds = SurvivalDataset(
        [f"c{i}" for i in range(n)], labels=np.zeros(n, int), events=np.ones(n, bool),
        times=np.ones(n), bags={f"c{i}": np.ones((2, 3), np.float32) for i in range(n)},
        omics=[np.ones((n, 2), np.float32)],
    )  # fmt: skip
    model = _Recorder()
    cfg = StepConfig(dev=torch.device("cpu"), need_path=True, need_omic=True, modality_dropout=p)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    ep = train_one_epoch(model, opt, ds, list(range(n)), cfg, epoch=0)
    assert (False, False) not in model.calls
    lost = sum(1 for c in model.calls if c != (True, True)) / n
    if p == 0:
        assert lost == 0 and ep.withheld == {"path": 0, "omic": 0}
    else:
        assert abs(lost - p) < 0.08
        assert ep.withheld["path"] == sum(1 for c in model.calls if c == (False, True))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_cohort(tmp_path_factory.mktemp("mm_cohort"), n=30)


def test_train_job_writes_predictions_missing(cohort: dict[str, str], tmp_path: Path) -> None:
    """(c) A multimodal job scores its held-out cases three ways; none = predictions.parquet."""
    run(cohort, tmp_path, "porpoise", fold=0, epochs=1, modality_dropout=0.5)
    out = tmp_path / "out"
    pred = pd.read_parquet(out / "predictions.parquet")
    pm = pd.read_parquet(out / "predictions_missing.parquet")
    assert set(pm["withheld"]) == {"none", "path", "omic"}
    for which, used in (("none", "path+omic"), ("path", "omic"), ("omic", "path")):
        rows = pm[pm["withheld"] == which]
        assert (
            list(rows["case_id"]) == list(pred["case_id"])
            and (rows["modalities_used"] == used).all()
        )
    none = pm[pm["withheld"] == "none"].drop(columns=["withheld", "modalities_used"])
    pd.testing.assert_frame_equal(none.reset_index(drop=True), pred)
    assert not np.allclose(pm.loc[pm["withheld"] == "path", "risk"], pred["risk"])
    import json

    meta = json.loads((out / "meta.json").read_text())
    assert meta["modality_dropout"] == 0.5
    log = pd.read_csv(out / "train_log.tsv", sep="\t")
    assert {"withheld_path", "withheld_omic"} <= set(log.columns)


def _frame(
    model: str, cohort: str, used: str, withheld: str, seed: int, shift: float
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 12
    t = rng.uniform(1, 50, n)
    return pd.DataFrame({
        "case_id": [f"{cohort}{i}" for i in range(n)], "fold": np.arange(n) % 2, "seed": seed,
        "risk": -t + shift * rng.normal(size=n), "survival_months": t,
        "event": np.arange(n) % 3 != 0, "model": model, "cohort": cohort,
        "model_selection": "last_epoch", "encoder_weights": "none",
        "withheld": withheld, "modalities_used": used,
    })  # fmt: skip


def test_table_rows_and_columns(tmp_path: Path) -> None:
    """(d) Rows = models with a cell; columns = cohort x {both, path only, omics only}."""
    frames = []
    for cohort in ("A", "B"):
        for seed in (0, 1):
            frames += [
                _frame("ours", cohort, "path+omic", "none", seed, 0.0),
                _frame("ours", cohort, "omic", "path", seed, 20.0),
                _frame("ours", cohort, "path", "omic", seed, 5.0),
                _frame("snn", cohort, "omic", "none", seed, 1.0),
                _frame("cox_clinical", cohort, "clinical", "none", seed, 1.0),
            ]
    preds = pd.concat(frames, ignore_index=True)
    order = ["snn", "ours", "cox_clinical"]
    summary, per_run = missing_modality_summary(preds, model_order=order, cohort_order=["A", "B"])
    assert len(per_run) == 2 * 2 * 2 * 4  # cohorts x folds x seeds x (3 ours + 1 snn) scorings
    both = summary[(summary["model"] == "ours") & (summary["scoring"] == "both")]
    assert (both["mean"] == 1.0).all() and (both["n_runs"] == 4).all()
    wide = missing_modality_wide(summary, model_order=order, cohort_order=["A", "B"])
    assert list(wide.index) == ["snn", "ours"]  # cox_clinical reads neither input
    assert list(wide.columns) == [f"{c} · {s}" for c in ("A", "B") for s in SCORINGS.values()]
    assert (
        wide.loc["snn", "A · both"] == "n/a"
        and wide.loc["snn", "A · path only (omics withheld)"] == "n/a"
    )
    assert wide.loc["ours", "A · both"].startswith("1.000 ±")
    files = []
    for i, (_, g) in enumerate(preds.groupby(["model", "cohort", "seed"])):
        files.append(tmp_path / f"p{i}.parquet")
        g.to_parquet(files[-1])
    write_missing_modality_table(
        files, out_csv=tmp_path / "t.csv", out_md=tmp_path / "t.md", model_order=order,
        cohort_order=["A", "B"],
    )  # fmt: skip
    md = (tmp_path / "t.md").read_text()
    assert "| ours |" in md and "omics only (path withheld)" in md
    assert len(pd.read_csv(tmp_path / "t.csv")) == len(summary)


def test_dry_run_plans_the_missing_modality_table(tmp_path: Path) -> None:
    """(e) The demo's DAG has the table rule and every train job declares the file."""
    repo = copy_repo(tmp_path)
    proc = snakemake(repo, "-n", "--quiet", "rules", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout + proc.stderr)
    assert counts.get("missing_modality_table") == 1 and counts.get("train", 0) > 0
