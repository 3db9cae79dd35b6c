"""Tests for mmsurv.tiling.geojson: tissue and patch GeoJSON that QuPath imports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from shapely.geometry import Polygon, box, shape

from mmsurv.tiling import geojson as gj
from mmsurv.tiling.stage import tile_and_save
from mmsurv.tiling.wsi import open_slide

TILING = {
    "reader": "openslide",
    "patch_size": 256,
    "target_magnification": 20,
    "mag_tolerance": 0.1,
    "min_tissue_fraction": 0.5,
    "empty_policy": "skip",
}


def _tile(slide, tmp_path, name):
    """Run the tile_slide rule's function on one slide; return (GeoJSON dict, level-0 size)."""
    out = tmp_path / f"{name}.geojson"
    tile_and_save(
        slide,
        coords_h5=tmp_path / f"{name}.h5",
        qc_png=tmp_path / f"{name}.png",
        tiling=TILING,
        geojson=out,
    )
    with open_slide(slide) as s:
        size = tuple(int(v) for v in s.dimensions)
    return json.loads(out.read_text()), size


def test_tissue_geojson_opens_and_lies_inside_the_slide(synth_slides, tmp_path):
    fc, (width, height) = _tile(synth_slides.s20, tmp_path, "s20")
    assert fc["type"] == "FeatureCollection" and fc["features"]
    slide_box = box(0, 0, width, height)
    polys = []
    for feature in fc["features"]:
        assert feature["type"] == "Feature"
        assert feature["properties"] == {
            "objectType": "annotation",
            "classification": {"name": "Tissue", "color": list(gj.TISSUE_COLOR)},
            "isLocked": False,
        }
        rings = feature["geometry"]["coordinates"]
        assert all(r[0] == r[-1] and len(r) >= 4 for r in rings)
        assert all(type(v) is float for r in rings for p in r for v in p)
        poly = shape(feature["geometry"])
        assert poly.geom_type == "Polygon" and poly.is_valid and poly.within(slide_box)
        assert poly.exterior.is_ccw and not any(r.is_ccw for r in poly.interiors)
        shell = Polygon(poly.exterior)
        assert all(shell.contains(Polygon(r)) for r in poly.interiors)
        polys.append(poly)
    # the synthetic tissue has lumens: they are the holes, and the area is the known tissue's
    assert sum(len(p.interiors) for p in polys) >= 1
    known = float(synth_slides.mask20.sum())  # s20 level 0 is the 20x field
    assert sum(p.area for p in polys) == pytest.approx(known, rel=0.1)
    # the same field scanned at 40x: the same outline at twice the level-0 coordinates
    fc40, size40 = _tile(synth_slides.s40, tmp_path, "s40")
    assert size40 == (2 * width, 2 * height)
    polys40 = [shape(f["geometry"]) for f in fc40["features"]]
    assert all(p.is_valid and p.within(box(0, 0, *size40)) for p in polys40)
    assert sum(p.area for p in polys40) == pytest.approx(4 * known, rel=0.1)


def test_empty_slide_writes_an_empty_collection(synth_slides, tmp_path):
    with pytest.warns(UserWarning, match="no tissue tiles"):
        fc, _ = _tile(synth_slides.white, tmp_path, "white")
    assert fc == {"type": "FeatureCollection", "features": []}


def test_tissue_rings_are_oriented_and_bounds_are_checked():
    square = np.array([[1, 1], [1, 8], [8, 8], [8, 1]], np.int32).reshape(-1, 1, 2)  # clockwise
    hole = np.array([[3, 3], [6, 3], [6, 6], [3, 6]], np.int32).reshape(-1, 1, 2)  # anti-clockwise
    line = np.array([[2, 2], [2, 4], [2, 2]], np.int32).reshape(-1, 1, 2)  # no area: dropped
    fc = gj.tissue_geojson([square], [[hole, line]], (4.0, 2.0), (40, 20), slide="x")
    (feature,) = fc["features"]
    poly = shape(feature["geometry"])
    assert poly.is_valid and poly.exterior.is_ccw and len(poly.interiors) == 1
    assert not poly.interiors[0].is_ccw
    assert poly.bounds == (6.0, 3.0, 34.0, 17.0)  # pixel centres (1.5 * 4, 1.5 * 2) ...
    assert poly.area == 28 * 14 - 12 * 6
    with pytest.raises(gj.SlideBoundsError, match="slide x: tissue polygon 0"):
        gj.tissue_geojson([square], [[]], (4.0, 2.0), (30, 20), slide="x")
    with pytest.raises(ValueError, match="slide x: 1 tissue contours but 0"):
        gj.tissue_geojson([square], [], (4.0, 2.0), (40, 20), slide="x")


def test_patches_geojson_top_k_by_score(tmp_path):
    coords = np.array([[0, 0], [512, 0], [0, 512], [512, 512]], np.int64)
    scores = np.array([0.1, 0.9, 0.5, 0.9], np.float32)
    fc = gj.patches_geojson(coords, 512, scores, top_k=3, name="Top attention", slide="s")
    assert len(fc["features"]) == 3
    got = [shape(f["geometry"]) for f in fc["features"]]
    # highest first, ties in input order; squares of side 512 at the level-0 top-left
    assert [p.bounds for p in got] == [
        (512, 0, 1024, 512),
        (512, 512, 1024, 1024),
        (0, 512, 512, 1024),
    ]
    assert all(p.is_valid and p.exterior.is_ccw and p.area == 512**2 for p in got)
    props = [f["properties"] for f in fc["features"]]
    assert {p["objectType"] for p in props} == {"tile"}
    assert {p["classification"]["name"] for p in props} == {"Top attention"}
    measured = [{m["name"]: m["value"] for m in p["measurements"]} for p in props]
    assert measured == [
        {"attention": pytest.approx(0.9), "rank": 1},
        {"attention": pytest.approx(0.9), "rank": 2},
        {"attention": pytest.approx(0.5), "rank": 3},
    ]
    path = tmp_path / "top.geojson"
    gj.write_geojson(path, fc)
    assert json.loads(path.read_text()) == json.loads(json.dumps(fc))
    # without scores: input order, no measurements; all patches when top_k is None
    plain = gj.patches_geojson(coords.tolist(), 512)
    assert [shape(f["geometry"]).bounds[:2] for f in plain["features"]] == [
        (0, 0),
        (512, 0),
        (0, 512),
        (512, 512),
    ]
    assert all("measurements" not in f["properties"] for f in plain["features"])
    assert gj.patches_geojson(np.zeros((0, 2)), 512, [], top_k=5)["features"] == []


def test_patches_geojson_refuses_bad_input():
    coords = np.array([[0, 0], [512, 0]])
    with pytest.raises(gj.SlideBoundsError, match=r"slide s: patch at \(512, 0\)"):
        gj.patches_geojson(coords, 512, slide="s", slide_size=(1000, 1000))
    with pytest.raises(ValueError, match="slide s: 1 scores for 2 patches"):
        gj.patches_geojson(coords, 512, [0.5], slide="s")
    with pytest.raises(ValueError, match="finite"):
        gj.patches_geojson(coords, 512, [0.5, np.nan])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        gj.patches_geojson(np.zeros((2, 3)), 512)
    with pytest.raises(ValueError, match="patch_size_level0"):
        gj.patches_geojson(coords, 0)
