"""Rule heatmaps: case choice, per-patch scores of the fold that held each case out, outputs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from shapely.geometry import box, shape

from mmsurv.bags.data import make_folds, read_clinical, write_splits
from mmsurv.bags.omics import build_omics_bags
from mmsurv.bags.stage import build_case_bags
from mmsurv.heatmaps import make_heatmaps
from mmsurv.model_catalog import HEATMAP_MODELS
from mmsurv.models import create_model, list_models, model_class
from mmsurv.training.outputs import checkpoint_path_scaler
from mmsurv.training.train import train_fold

torch.set_num_threads(1)

DIM = 16
PATCH = 64  # level-0 patch size on the 768 x 512 synthetic slide: a 12 x 8 grid
N_CASES = 16
N_HIGH, N_LOW, TOP = 2, 2, 5


def _write_features(path: Path, coords: np.ndarray, feats: np.ndarray, mpp_source: str) -> None:
    """A features h5 as the features stage writes it (CLAM layout, tiling attrs on coords)."""
    with h5py.File(path, "w") as h5:
        h5.create_dataset("features", data=feats.astype(np.float32))
        dset = h5.create_dataset("coords", data=coords.astype(np.int64))
        for key, value in {
            "patch_size": PATCH, "patch_size_level0": PATCH, "level0_mpp": 0.5,
            "mpp_source": mpp_source,
        }.items():  # fmt: skip
            dset.attrs[key] = value
        h5.attrs["encoder"], h5.attrs["weights"], h5.attrs["feature_dim"] = "dummy", "x", DIM


def _cohort(root: Path, slides) -> dict:
    """16 cases (the first three with two slides), risk in the patches, two trained folds."""
    rng = np.random.default_rng(3)
    ids = [f"C{i:02d}" for i in range(N_CASES)]
    risk = rng.normal(size=N_CASES)
    time = rng.exponential(30 * np.exp(-risk)) + 1
    clin = pd.DataFrame(
        {"case_id": ids, "survival_months": time, "event": (rng.random(N_CASES) < 0.7).astype(int)}
    )
    clin.to_csv(root / "clinical.tsv", sep="\t", index=False)
    fams = {"Tumor Suppressor Genes": ["TP53", "RB1"], "Oncogenes": ["MYC", "KRAS"]}
    pd.DataFrame(fams).to_csv(root / "families.csv", index=False)
    omics = {
        "case_id": ids,
        **{f"{g}_rnaseq": rng.normal(size=N_CASES) for g in sum(fams.values(), [])},
    }
    pd.DataFrame(omics).to_csv(root / "omics.tsv", sep="\t", index=False)
    build_omics_bags(
        root / "omics.tsv", root / "families.csv", root / "omics.parquet", root / "families.json"
    )
    grid = np.array([(x, y) for y in range(0, 512, PATCH) for x in range(0, 768, PATCH)])
    (root / "features").mkdir()
    table, slide_files = [], {}
    for i, (case, r) in enumerate(zip(ids, risk, strict=True)):
        for k in range(2 if i < 3 else 1):
            sid = f"{case}-S{k}"
            coords = grid[rng.choice(len(grid), size=int(rng.integers(6, 20)), replace=False)]
            feats = rng.normal(size=(len(coords), DIM)) + r
            no_mpp = sid == "C01-S1"
            _write_features(
                root / "features" / f"{sid}.h5",
                coords,
                feats,
                "objective-power" if no_mpp else "mpp",
            )
            table.append((case, sid))
            slide_files[sid] = str(slides.no_mpp if no_mpp else slides.tiny)
    features = sorted(str(p) for p in (root / "features").glob("*.h5"))
    build_case_bags(features, table, root / "bags.h5")
    write_splits(
        make_folds(read_clinical(root / "clinical.tsv"), n_folds=2, seed=0), root / "splits.tsv"
    )
    predictions = []
    for fold in (0, 1):
        out = root / "train" / "attn_mil" / "seed0" / f"fold{fold}"
        train_fold(
            cohort="SYN", model_name="attn_mil", fold=fold, bags_h5=str(root / "bags.h5"),
            omics_parquet=str(root / "omics.parquet"), families_json=str(root / "families.json"),
            clinical_tsv=str(root / "clinical.tsv"), splits_tsv=str(root / "splits.tsv"),
            out_dir=str(out), seed=0, device="cpu",
            params={"epochs": 2, "lr": 1e-3, "grad_accum": 4, "max_patches": 8, "num_threads": 1,
                    "model_kwargs": {"path_dim": DIM}},
        )  # fmt: skip
        predictions.append(str(out / "predictions.parquet"))
    return {
        "cohort": "SYN", "model_name": "attn_mil", "predictions": predictions,
        "bags_h5": str(root / "bags.h5"), "omics_parquet": str(root / "omics.parquet"),
        "families_json": str(root / "families.json"), "feature_files": features,
        "slide_files": slide_files, "reader": "tiffslide", "n_high": N_HIGH, "n_low": N_LOW,
        "top_patches": TOP, "thumbnail_px": 256,
    }  # fmt: skip


def _outputs(d: Path) -> dict:
    return {
        "slides_dir": d / "slides",
        "figures_dir": d / "figures",
        "pdf": d / "heatmaps.pdf",
        "tsv": d / "cases.tsv",
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory, synth_slides):
    root = tmp_path_factory.mktemp("heat")
    kwargs = _cohort(root, synth_slides)
    out = _outputs(root / "heatmaps")
    table = make_heatmaps(**kwargs, **out)
    return kwargs, out, table


def test_chosen_cases_are_the_highest_and_lowest_risk_held_out_ones(run) -> None:
    kwargs, out, table = run
    pred = pd.concat(pd.read_parquet(p) for p in kwargs["predictions"])
    assert len(pred) == N_CASES  # every case held out once
    # ranked within the fold that held each out (each fold model has its own risk scale)
    pred["pct"] = pred.groupby("fold")["risk"].rank(pct=True)
    pred = pred.sort_values(["pct", "risk"])
    expected = list(pred["case_id"][::-1][:N_HIGH]) + list(pred["case_id"][:N_LOW][::-1])
    assert pred["fold"].nunique() > 1
    tsv = pd.read_csv(out["tsv"], sep="\t", dtype={"case_id": str})
    assert list(tsv["case_id"]) == list(table["case_id"]) == expected
    assert list(tsv["group"]) == ["high"] * N_HIGH + ["low"] * N_LOW
    by_case = pred.set_index("case_id")
    np.testing.assert_allclose(tsv["risk"], by_case.loc[expected, "risk"])
    assert list(tsv["fold"]) == list(by_case.loc[expected, "fold"])


def test_h5_holds_the_fold_models_attention_at_the_slide_coords(run) -> None:
    kwargs, out, table = run
    bags = h5py.File(kwargs["bags_h5"], "r")
    for _, row in table.iterrows():
        ckpt = torch.load(
            Path(kwargs["predictions"][row["fold"]]).parent / "checkpoint.pt", weights_only=False
        )
        model = create_model("attn_mil", **ckpt["meta"]["model_kwargs_resolved"])
        model.load_state_dict(ckpt["state_dict"])
        model.eval()
        group = bags[f"cases/{row['case_id']}"]
        scaler = checkpoint_path_scaler(ckpt, "checkpoint")  # the model reads z-scored patches
        assert scaler is not None
        feats = torch.from_numpy(scaler.transform(group["features"][()]))
        with torch.no_grad():
            weights = model.patch_scores(feats)["attention"].numpy()
        np.testing.assert_allclose(row["risk_recomputed"], row["risk"], rtol=1e-5)
        total = 0.0
        for i, sid in enumerate(group.attrs["slide_ids"]):
            with (
                h5py.File(out["slides_dir"] / f"{sid}.h5") as h5,
                h5py.File(Path(kwargs["bags_h5"]).parent / "features" / f"{sid}.h5") as fh,
            ):
                n = len(fh["coords"])
                assert h5["coords"].shape == (n, 2) and h5["attention"].shape == (n,)
                np.testing.assert_array_equal(h5["coords"][()], fh["coords"][()])
                rows = group["slide_index"][()] == i
                np.testing.assert_allclose(h5["attention"][()], weights[rows], rtol=1e-5)
                assert h5["attention"].dtype == np.float32
                assert h5.attrs["case_id"] == row["case_id"] and h5.attrs["fold"] == row["fold"]
                assert "attention" in h5.attrs["caption"]
                total += float(h5["attention"][()].sum())
        assert total == pytest.approx(1.0, abs=1e-5)  # softmax over all the case's slides


def test_png_per_case_and_one_pdf_page_per_case(run) -> None:
    _, out, table = run
    assert sorted(p.name for p in out["figures_dir"].glob("*.png")) == sorted(
        f"{c}.png" for c in table["case_id"]
    )
    counts = re.findall(rb"/Type /Pages[^>]*?/Count (\d+)", out["pdf"].read_bytes())
    assert [int(c) for c in counts] == [len(table)]


def test_geojson_has_the_top_patches_inside_the_slide(run) -> None:
    kwargs, out, table = run
    sids = [s for s in table["slides"] for s in s.split(",")]
    assert "C01-S1" in sids or len(sids) >= len(table)
    for sid in sids:
        doc = json.loads((out["slides_dir"] / f"{sid}.geojson").read_text())
        with h5py.File(out["slides_dir"] / f"{sid}.h5") as h5:
            att, coords = h5["attention"][()], h5["coords"][()]
            size = tuple(h5.attrs["level0_size"])
        polys = [shape(f["geometry"]) for f in doc["features"]]
        assert len(polys) == min(TOP, len(att))
        assert all(p.is_valid and box(0, 0, *size).contains(p) for p in polys)
        top = {tuple(coords[i]) for i in np.argsort(-att, kind="stable")[:TOP]}
        assert {tuple(int(v) for v in p.bounds[:2]) for p in polys} == top


@pytest.mark.parametrize("broken", ["checkpoint", "features", "patch_count"])
def test_a_missing_input_names_the_case(run, tmp_path, broken) -> None:
    kwargs, _, table = run
    kwargs = dict(kwargs)
    case = table["case_id"][0]
    sid = table["slides"][0].split(",")[0]
    if broken == "checkpoint":
        copies = []
        for p in kwargs["predictions"]:
            dest = tmp_path / Path(p).parent.name / "predictions.parquet"
            dest.parent.mkdir()
            copies.append(str(shutil.copy(p, dest)))
        kwargs["predictions"], error = copies, FileNotFoundError
    else:
        feature = tmp_path / f"{sid}.h5"
        if broken == "patch_count":
            with h5py.File(next(f for f in kwargs["feature_files"] if Path(f).stem == sid)) as h5:
                _write_features(feature, h5["coords"][:-1], h5["features"][:-1], "mpp")
        files = [f for f in kwargs["feature_files"] if Path(f).stem != sid]
        kwargs["feature_files"], error = [*files, str(feature)], FileNotFoundError
        if broken == "patch_count":
            error = ValueError
    with pytest.raises(error, match=f"case {case}"):
        make_heatmaps(**kwargs, **_outputs(tmp_path / "out"))


def test_patch_scores_are_the_weights_forward_pools_with() -> None:
    torch.manual_seed(0)
    model = create_model("attn_mil", path_dim=DIM, n_bins=4).eval()
    x = torch.randn(9, DIM)
    with torch.no_grad():
        w = model.patch_scores(x)["attention"]
        logits = model.classifier(model.rho(w.unsqueeze(0) @ model.fc(x)))
        out = model(x)
    assert w.shape == (9,) and float(w.sum()) == pytest.approx(1.0)
    torch.testing.assert_close(out.logits, logits)


def test_heatmap_models_are_the_models_with_patch_scores() -> None:
    """model_catalog.HEATMAP_MODELS (read at parse time, no torch) matches the classes."""
    with_scores = {m for m in list_models() if model_class(m).patch_score_caption}
    assert set(HEATMAP_MODELS) == with_scores


def test_dry_run_plans_one_heatmaps_job_per_cohort_and_model(tmp_path: Path) -> None:
    from test_workflow import _job_counts, copy_repo, snakemake

    repo = copy_repo(tmp_path)
    (repo / "mine.yaml").write_text(yaml.safe_dump({"heatmaps": {"models": ["attn_mil", "ours"]}}))
    proc = snakemake(
        repo,
        "-n",
        "--quiet",
        "rules",
        "--configfile",
        "config/config.yaml",
        "mine.yaml",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    assert _job_counts(proc.stdout + proc.stderr)["heatmaps"] == 2 * len(config["cohorts"])
    # a model without per-patch scores is refused (config schema), naming the key
    (repo / "bad.yaml").write_text(yaml.safe_dump({"heatmaps": {"models": ["snn"]}}))
    proc = snakemake(repo, "-n", "--configfile", "config/config.yaml", "bad.yaml", timeout=300)
    assert proc.returncode != 0
    assert "`heatmaps.models`: ['snn'] is not valid" in proc.stdout + proc.stderr


def test_blend_paints_patches_over_the_thumbnail_and_leaves_the_rest() -> None:
    from matplotlib.colors import Normalize

    from mmsurv.heatmaps.draw import ALPHA, blend, paint_scores

    thumb = np.full((40, 60, 3), 200, np.uint8)
    coords = np.array([[0, 0], [300, 200]])  # level 0; downsample 10 -> 10 px squares
    overlay = paint_scores((40, 60), coords, 100, np.array([0.0, 1.0]), (10, 10), Normalize(0, 1))
    out = blend(thumb, overlay)
    assert out.dtype == np.uint8 and out.shape == thumb.shape
    assert (out[20:, :30] == 200).all() and (out[:20, 40:] == 200).all()  # no patch there
    lo, hi = overlay[5, 5, :3], overlay[25, 35, :3]  # viridis at 0 and at 1
    np.testing.assert_allclose(out[5, 5], 200 * (1 - ALPHA) + 255 * ALPHA * lo, atol=1)
    np.testing.assert_allclose(out[25, 35], 200 * (1 - ALPHA) + 255 * ALPHA * hi, atol=1)
    assert not np.array_equal(out[5, 5], out[25, 35])
