"""mmsurv.demo.cohort: deterministic sheet and cohort, censoring, signal in every modality."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import openslide
import pandas as pd
import pytest
from sksurv.metrics import concordance_index_censored

from mmsurv.demo import cohort as demo

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ROOT / "resources" / "gene_families.csv"
SHEET = ROOT / "config" / "demo" / "slides.tsv"


@pytest.fixture(scope="module")
def default_sheet() -> pd.DataFrame:
    """The default demo sheet (defaults of make_sheet)."""
    return demo.make_sheet(list(demo.DEFAULT_COHORTS))


@pytest.fixture(scope="module")
def tables(default_sheet, tmp_path_factory) -> dict[str, dict[str, pd.DataFrame]]:
    """Tables (no slides) of every default cohort."""
    out = {}
    d = tmp_path_factory.mktemp("tables")
    for cohort in demo.DEFAULT_COHORTS:
        kw = dict(omics_out=d / cohort / "omics.tsv", clinical_out=d / cohort / "clinical.tsv")
        demo.make_cohort(
            cohort, default_sheet, gene_families_csv=FAMILIES, write_slides=False, **kw
        )
        out[cohort] = {
            name: pd.read_csv(d / cohort / f"{name}.tsv", sep="\t", dtype={"case_id": str})
            for name in ("omics", "clinical", "truth")
        }
    return out


def test_sheet_layout(default_sheet):
    s = default_sheet
    assert list(s.columns) == ["cohort", "case_id", "slide_id", "path"]
    for cohort in demo.DEFAULT_COHORTS:
        rows = s[s.cohort == cohort]
        assert rows.case_id.nunique() == 50
        assert (rows.groupby("case_id").size() == 2).sum() == 10  # 20 % of cases
    assert s.slide_id.is_unique
    r = s.iloc[0]
    assert r.case_id == "DEMO-BLCA-C001" and r.slide_id.startswith("DEMO-BLCA-C001-S")
    assert r.path == f"results/demo_data/DEMO-BLCA/slides/{r.slide_id}.svs"


def test_committed_sheet_regenerates_identically(tmp_path):
    out = tmp_path / "slides.tsv"
    assert demo.main(["sheet", "--out", str(out)]) == 0
    assert out.read_bytes() == SHEET.read_bytes()
    other = demo.make_sheet(["DEMO-BLCA"], seed=1, n_cases=10, data_dir="x/")
    assert other.path.iloc[0].startswith("x/DEMO-BLCA/slides/")


@pytest.mark.parametrize("cohort", demo.DEFAULT_COHORTS)
def test_censoring_and_risk_signal(tables, cohort):
    t = tables[cohort]
    clinical, truth, omics = t["clinical"], t["truth"], t["omics"]
    # age and sex for cox_clinical: plausible, seeded, carrying no planted signal
    assert list(clinical.columns) == ["case_id", "survival_months", "event", "age", "sex"]
    assert clinical.age.between(30, 90).all() and set(clinical.sex) == {"female", "male"}
    assert set(clinical.event) <= {0, 1}
    assert 0.4 <= 1 - clinical.event.mean() <= 0.6
    assert clinical.survival_months.between(1.0, 150.0).all()
    assert (clinical.case_id == truth.case_id).all() and (omics.case_id == truth.case_id).all()
    cindex = concordance_index_censored(
        clinical.event.astype(bool), clinical.survival_months, truth.hidden_risk
    )[0]
    assert cindex > 0.65
    rna = omics.filter(like="_rnaseq")
    cnv = omics.filter(like="_cnv")
    assert rna.shape[1] == cnv.shape[1] >= 150 and omics.columns.is_unique
    assert (rna.to_numpy() >= 0).all()
    assert set(np.unique(cnv.to_numpy())) <= {-2, -1, 0, 1, 2}
    corr = rna.corrwith(truth.hidden_risk).abs().sort_values(ascending=False).to_numpy()
    n_signal = round(0.2 * len(corr))
    assert corr[:n_signal].mean() > 0.4  # signal genes
    assert corr[len(corr) // 2 :].mean() < 0.15  # the rest is noise


def test_tables_deterministic(tables, default_sheet, tmp_path):
    cohort = "DEMO-LUAD"
    demo.make_cohort(
        cohort,
        default_sheet,
        gene_families_csv=str(FAMILIES),
        omics_out=str(tmp_path / "o.tsv"),
        clinical_out=str(tmp_path / "c.tsv"),
        write_slides=False,
    )
    again = pd.read_csv(tmp_path / "o.tsv", sep="\t", dtype={"case_id": str})
    pd.testing.assert_frame_equal(again, tables[cohort]["omics"])
    # the sheet's row order does not matter (the workflow may sort it)
    shuffled = default_sheet.sample(frac=1.0, random_state=0)
    demo.make_cohort(
        cohort,
        shuffled,
        gene_families_csv=str(FAMILIES),
        omics_out=str(tmp_path / "o2.tsv"),
        clinical_out=str(tmp_path / "c2.tsv"),
        write_slides=False,
    )
    assert (tmp_path / "o2.tsv").read_bytes() == (tmp_path / "o.tsv").read_bytes()
    assert (tmp_path / "c2.tsv").read_bytes() == (tmp_path / "c.tsv").read_bytes()
    other = tables["DEMO-BLCA"]["truth"].hidden_risk.to_numpy()
    assert not np.allclose(other, tables[cohort]["truth"].hidden_risk.to_numpy())


def test_slide_plan_on_default_sheet(default_sheet):
    for cohort in demo.DEFAULT_COHORTS:
        ids = default_sheet.loc[default_sheet.cohort == cohort, "slide_id"].tolist()
        plan = demo.slide_plan(2025, cohort, ids)
        assert set(plan.app_mag) == {20.0, 40.0}
        assert plan.no_mpp.sum() >= 1
        assert plan.equals(demo.slide_plan(2025, cohort, ids))


def test_cohort_slides_deterministic(tmp_path):
    # run b renders the slides in a process pool (as the demo rule does): same bytes
    sheet = demo.make_sheet(["DEMO-UCEC"], n_cases=3, data_dir=str(tmp_path / "a"))
    files = {}
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        for run, executor in (("a", None), ("b", pool)):
            s = sheet.assign(path=sheet.path.str.replace(str(tmp_path / "a"), str(tmp_path / run)))
            demo.make_cohort(
                "DEMO-UCEC",
                s,
                gene_families_csv=str(FAMILIES),
                omics_out=str(tmp_path / run / "omics.tsv"),
                clinical_out=str(tmp_path / run / "clinical.tsv"),
                executor=executor,
            )
            files[run] = s.path.tolist()
    written = sorted(f.relative_to(tmp_path / "a") for f in (tmp_path / "a").rglob("*.*"))
    assert {"regions.tsv", "truth.tsv"} <= {f.name for f in written}
    for suffix in (".geojson", ".svs"):  # the slides themselves are among the compared files
        assert len([f for f in written if f.suffix == suffix]) == len(sheet), suffix
    for name in written:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    plan = demo.slide_plan(2025, "DEMO-UCEC", sheet.slide_id.tolist())
    for pa, p in zip(files["a"], plan.itertuples(), strict=True):
        with openslide.OpenSlide(pa) as a:
            expected = (4096, 3072) if p.app_mag == 40 else (2048, 1536)
            assert a.dimensions == expected
            assert float(a.properties["openslide.objective-power"]) == p.app_mag
            assert ("openslide.mpp-x" in a.properties) != p.no_mpp


def test_images_carry_the_risk():
    # dark (nucleus) pixel fraction within tissue rises with the hidden risk
    risks = np.linspace(-2, 2, 16)
    dark = []
    for i, r in enumerate(risks):
        rgb, mask = demo.render_tissue(np.random.default_rng(i), r, width=512, height=384)
        tissue = rgb[mask > 0].astype(int)
        dark.append((tissue.sum(axis=1) < 400).mean())
        assert 0.25 < mask.mean() < 0.65
    assert np.corrcoef(risks, dark)[0, 1] > 0.6
    assert np.corrcoef(risks, dark)[0, 1] < 0.999  # with noise


def test_errors(default_sheet, tmp_path):
    kw = dict(gene_families_csv=str(FAMILIES), omics_out="o", clinical_out="c")
    with pytest.raises(ValueError, match="DEMO-XXX"):
        demo.make_cohort("DEMO-XXX", default_sheet, **kw)
    with pytest.raises(KeyError, match="path"):
        demo.make_cohort("DEMO-BLCA", default_sheet.drop(columns="path"), **kw)
    kw["gene_families_csv"] = str(tmp_path / "none.csv")
    with pytest.raises(FileNotFoundError, match="none.csv"):
        demo.make_cohort("DEMO-BLCA", default_sheet, **kw)
