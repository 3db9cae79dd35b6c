"""mmsurv.demo.regions: the demo's pathology risk lives in planted regions, written per slide."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import openslide
import pandas as pd
import pytest
import shapely
from scipy.stats import spearmanr
from shapely.geometry import box, shape

from mmsurv.demo import cohort as demo
from mmsurv.demo import patch_region_fraction
from mmsurv.demo.regions import (
    FRACTION_RANGE,
    RegionFileError,
    attention_in_regions,
    region_geojson,
    write_region_file,
)

FAMILIES = Path(__file__).resolve().parents[1] / "resources" / "gene_families.csv"
RISKS = np.linspace(-2.5, 2.5, 24)


@pytest.fixture(scope="module")
def fields() -> list[demo.Field]:
    """Small fields over a range of risks, one seed each (~0.5 s)."""
    return [
        demo.render_field(np.random.default_rng(i), r, width=512, height=384)
        for i, r in enumerate(RISKS)
    ]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A 3-case demo cohort with both 20x and 40x scans: (its data dir, regions.tsv)."""
    d = tmp_path_factory.mktemp("demo")
    sheet = demo.make_sheet(["DEMO-UCEC"], n_cases=3, data_dir=str(d))
    demo.make_cohort(
        "DEMO-UCEC",
        sheet,
        gene_families_csv=str(FAMILIES),
        omics_out=str(d / "DEMO-UCEC" / "omics.tsv"),
        clinical_out=str(d / "DEMO-UCEC" / "clinical.tsv"),
    )
    table = pd.read_csv(d / "DEMO-UCEC" / "regions.tsv", sep="\t", dtype={"slide_id": str})
    return d / "DEMO-UCEC", table.merge(sheet[["slide_id", "path"]], on="slide_id")


def test_region_area_and_grade_grow_with_risk(fields):
    fraction = np.array([f.region.sum() / f.tissue.sum() for f in fields])
    assert spearmanr(RISKS, fraction).statistic > 0.8
    assert spearmanr(RISKS, [f.grade for f in fields]).statistic > 0.8  # and their grade
    assert fraction.min() < 0.06 and fraction.max() > 0.25
    assert np.all(fraction > 0) and np.all(fraction <= FRACTION_RANGE[1])
    for f in fields:  # regions lie in tissue, and the tissue is unchanged in size
        assert not np.any(f.region & (f.tissue == 0))
        assert 0.25 < f.tissue.mean() < 0.65


def test_regions_have_a_distinct_texture(fields):
    # tumour-like regions: darker (crowded large nuclei on purple stroma) than the rest
    for f in fields:
        grey = f.rgb.mean(axis=2)
        core = cv2.erode(f.region, np.ones((9, 9), np.uint8)) > 0
        rest = (f.tissue > 0) & (cv2.dilate(f.region, np.ones((25, 25), np.uint8)) == 0)
        if core.sum() > 200:
            assert grey[core].mean() < grey[rest].mean() - 25


def test_background_is_risk_independent():
    # same slide stream, lowest vs highest risk: outside both regions the pixels are identical
    for seed in range(3):
        lo = demo.render_field(np.random.default_rng(seed), -2.5, width=512, height=384)
        hi = demo.render_field(np.random.default_rng(seed), 2.5, width=512, height=384)
        assert hi.region.sum() > 2 * lo.region.sum()
        np.testing.assert_array_equal(lo.tissue, hi.tissue)
        # nuclei drawn in a region reach up to ~15 px beyond it
        near = cv2.dilate(lo.region | hi.region, np.ones((35, 35), np.uint8)) > 0
        far = (lo.tissue > 0) & ~near
        assert far.sum() > 0.3 * lo.tissue.sum()
        np.testing.assert_array_equal(lo.rgb[far], hi.rgb[far])


def test_deterministic():
    a = demo.render_field(np.random.default_rng(7), 0.3, width=512, height=384)
    b = demo.render_field(np.random.default_rng(7), 0.3, width=512, height=384)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    ga = region_geojson(a.region, 2.0, slide_id="s", fraction=0.1)
    assert json.dumps(ga) == json.dumps(region_geojson(b.region, 2.0, slide_id="s", fraction=0.1))


def test_region_files_in_level0_coords(cohort):
    data, table = cohort
    assert set(table.scan_magnification) == {20.0, 40.0}
    assert spearmanr(table.hidden_risk, table.region_fraction).statistic > 0.5
    for row in table.itertuples():
        collection = json.loads((data / "regions" / f"{row.slide_id}.geojson").read_text())
        assert collection["slide_id"] == row.slide_id
        polygons = [shape(f["geometry"]) for f in collection["features"]]
        assert len(polygons) == row.n_regions >= 1
        assert all(p.is_valid for p in polygons)
        region = shapely.union_all(polygons)
        with openslide.OpenSlide(row.path) as slide:
            width, height = slide.dimensions
            assert collection["level0_size"] == [width, height]
            assert box(0, 0, width, height).contains(region)
            assert region.area == pytest.approx(row.region_area_level0, rel=0.03)
            # the polygons sit on the dark planted texture at the slide's level-0 scale
            level = slide.get_best_level_for_downsample(8 * row.level0_per_field_px)
            ds = slide.level_downsamples[level]
            img = np.asarray(slide.read_region((0, 0), level, slide.level_dimensions[level]))
        grey = img[..., :3].mean(axis=2)
        yy, xx = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]]
        inside = shapely.contains_xy(region, (xx + 0.5) * ds, (yy + 0.5) * ds)
        tissue = grey < 225
        assert grey[inside & tissue].mean() < grey[~inside & tissue].mean() - 20


def test_patch_region_fraction_on_a_known_polygon(tmp_path):
    # a 1000-px square with a 200-px square hole, in level-0 pixels
    path = tmp_path / "r.geojson"
    outer = [[100, 100], [1100, 100], [1100, 1100], [100, 1100], [100, 100]]
    hole = [[500, 500], [500, 700], [700, 700], [700, 500], [500, 500]]
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [outer, hole]}}
    write_region_file(path, {"type": "FeatureCollection", "features": [feature]})
    coords = np.array([[200, 200], [1500, 200], [500, 500], [1000, 200], [550, 450]])
    frac = patch_region_fraction(path, coords, 200)
    np.testing.assert_allclose(frac, [1.0, 0.0, 0.0, 0.5, 0.4375], atol=0.02)
    assert patch_region_fraction(path, np.zeros((0, 2)), 200).shape == (0,)
    with pytest.raises(ValueError, match="patch_size_level0"):
        patch_region_fraction(path, coords, 0)
    (tmp_path / "bad.geojson").write_text('{"type": "Feature"}')
    with pytest.raises(RegionFileError, match="bad.geojson"):
        patch_region_fraction(tmp_path / "bad.geojson", coords, 200)


def _region(path: Path) -> shapely.Geometry:
    """The union of a region file's polygons, read with shapely's GeoJSON reader."""
    return shapely.union_all(
        [shape(f["geometry"]) for f in json.loads(path.read_text())["features"]]
    )


def test_patch_region_fraction_on_demo_slides(cohort):
    # against shapely's exact intersection areas, at both scan magnifications
    data, table = cohort
    rng = np.random.default_rng(0)
    for row in table.itertuples():
        path = data / "regions" / f"{row.slide_id}.geojson"
        region = _region(path)
        scale = row.level0_per_field_px
        size = int(128 * scale)
        coords = rng.integers(0, [2048 * scale - size, 1536 * scale - size], size=(200, 2))
        frac = patch_region_fraction(path, coords, size)
        exact = np.array(
            [region.intersection(box(x, y, x + size, y + size)).area for x, y in coords]
        )
        assert np.abs(frac - exact / size**2).max() < 0.05
        assert np.all(frac[exact == 0] == 0)


def test_attention_in_regions(cohort, tmp_path):
    # a heatmap whose scores are the patches' region share attends inside, by construction
    data, table = cohort
    row = table.iloc[0]
    size = int(256 * row.level0_per_field_px)
    step = size // 2
    xs, ys = np.meshgrid(
        np.arange(0, 2048 * row.level0_per_field_px - size, step),
        np.arange(0, 1536 * row.level0_per_field_px - size, step),
    )
    coords = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.int64)
    frac = patch_region_fraction(data / "regions" / f"{row.slide_id}.geojson", coords, size)
    with h5py.File(tmp_path / f"{row.slide_id}.h5", "w") as h5:
        h5.create_dataset("coords", data=coords)
        h5.create_dataset("attention", data=(0.1 + frac) / (0.1 + frac).sum())
        h5.attrs["patch_size_level0"] = size
    got = attention_in_regions(tmp_path, data / "regions")
    assert got["n_inside"] > 0 and got["n_outside"] > 0
    assert got["inside"] > 5 * got["outside"]
    assert got["inside_rel"] > 1 > got["outside_rel"]
