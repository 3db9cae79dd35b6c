"""Embedded demo cohort: synthetic slides, omics and survival driven by a hidden risk per case.

The slides carry the risk only in planted tumour-like regions whose area grows with it; each
slide's regions are written as a GeoJSON region file beside the cohort's hidden `truth.tsv`
(`mmsurv.demo.regions`).

Everything is deterministic for (seed, cohort name): random streams come from numpy Generators
seeded with the seed and a stable (sha256) hash of the cohort name, never Python's hash().
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import pandas as pd

from mmsurv.demo.regions import (
    plant_regions,
    planted_fraction,
    region_geojson,
    write_region_file,
)
from mmsurv.demo.synth import write_svs
from mmsurv.genes import load_gene_families
from mmsurv.io import write_text_atomic

__all__ = [
    "DEFAULT_COHORTS",
    "make_sheet",
    "make_cohort",
    "Field",
    "render_field",
    "render_tissue",
    "region_paths",
    "slide_plan",
    "main",
]

DEFAULT_COHORTS = ("DEMO-BLCA", "DEMO-LUAD", "DEMO-UCEC")

#: Slide geometry: every slide covers the same physical field, rendered at 20x (0.5 µm/px).
WIDTH_20X, HEIGHT_20X = 2048, 1536
MPP_20X, MPP_40X = 0.5, 0.25
#: Pyramids: 40x scans get TCGA-like downsamples; 20x scans (1, 2, 8) so that both scans
#: have a 4 µm/px level for segmentation.
DOWNSAMPLES_40X, DOWNSAMPLES_20X = (1, 4, 16), (1, 2, 8)
JPEG_QUALITY = 80
FRACTION_TWO_SLIDES = 0.2
FRACTION_40X = 0.5
FRACTION_NO_MPP = 0.05
#: Survival model: Weibull times with scale exp(-BETA * r); then calibrated uniform censoring.
BETA, WEIBULL_SHAPE, BASE_SCALE_MONTHS, MAX_FOLLOW_UP = 1.0, 1.5, 50.0, 150.0
TARGET_CENSORED = 0.5

#: Tissue colours (RGB): normal stroma and nuclei, and the planted tumour-like regions:
#: stroma and nuclei, with their nuclei density (x the normal 1 / 700 px²) and mean radius (px).
NORMAL_STROMA, NORMAL_NUCLEI = (232, 140, 185), (95, 50, 135)
TUMOUR_STROMA, TUMOUR_NUCLEI = (196, 104, 204), (60, 25, 100)
TUMOUR_DENSITY, TUMOUR_RADIUS = 4.0, 6.5
#: The regions' grade (0-1, logistic in the risk, per-slide noise) scales their nuclei from
#: x (1 - GRADE_SPAN / 2) to x (1 + GRADE_SPAN / 2) the density and +-GRADE_RADIUS px the radius:
#: a model must look into the regions, not only count them, to read the whole risk.
GRADE_SLOPE, GRADE_NOISE, GRADE_SPAN, GRADE_RADIUS = 1.5, 0.5, 0.8, 1.25

# RNG stream ids (so that each part can be regenerated independently of the others)
_SHEET, _CLINICAL, _OMICS, _SLIDE_PLAN, _SLIDE, _COVARIATES = 0, 1, 2, 3, 4, 5
#: Clinical covariates (no signal: cox_clinical's floor should sit near c = 0.5 on the demo).
AGE_MEAN, AGE_SD, AGE_RANGE, FRACTION_FEMALE = 65.0, 10.0, (30, 90), 0.4


def _stable_hash(text: str) -> int:
    """A 63-bit hash of `text` that is the same in every process (unlike hash())."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def _rng(seed: int, cohort: str, *stream: int) -> np.random.Generator:
    """Generator for one named random stream of one cohort."""
    return np.random.default_rng([int(seed), _stable_hash(cohort), *stream])


def _write_tsv(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a TSV (no index, fixed float format) atomically."""
    write_text_atomic(path, df.to_csv(sep="\t", index=False, lineterminator="\n"))


# --------------------------------------------------------------------------------------------
# Sheet
# --------------------------------------------------------------------------------------------


def make_sheet(
    cohorts: list[str],
    *,
    n_cases: int = 50,
    seed: int = 2025,
    data_dir: str = "results/demo_data",
) -> pd.DataFrame:
    """Slide sheet (cohort, case_id, slide_id, path) of the demo; ~20 % of cases have 2 slides."""
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}")
    if len(set(cohorts)) != len(cohorts) or not cohorts:
        raise ValueError(f"cohorts must be a non-empty list of unique names, got {cohorts}")
    rows = []
    data_dir = str(data_dir).rstrip("/")
    for cohort in cohorts:
        rng = _rng(seed, cohort, _SHEET)
        n_two = int(round(FRACTION_TWO_SLIDES * n_cases))
        two = set(rng.choice(n_cases, size=n_two, replace=False).tolist())
        for i in range(n_cases):
            case_id = f"{cohort}-C{i + 1:03d}"
            for s in range(2 if i in two else 1):
                slide_id = f"{case_id}-S{s + 1}"
                path = f"{data_dir}/{cohort}/slides/{slide_id}.svs"
                rows.append((cohort, case_id, slide_id, path))
    return pd.DataFrame(rows, columns=["cohort", "case_id", "slide_id", "path"])


# --------------------------------------------------------------------------------------------
# Clinical and omics tables
# --------------------------------------------------------------------------------------------


def _survival(rng: np.random.Generator, risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weibull survival months (scale ∝ exp(-BETA r)), censored independently to ~50 %."""
    n = len(risk)
    u = rng.uniform(size=n)
    scale = BASE_SCALE_MONTHS * np.exp(-BETA * risk)
    times = 1.0 + scale * (-np.log(u)) ** (1.0 / WEIBULL_SHAPE)
    # independent exponential censoring C = 1 + s * V; s calibrated so ~half are censored
    v = rng.exponential(size=n)
    target = int(round(TARGET_CENSORED * n))

    def n_censored(s: float) -> int:
        cens = np.minimum(1.0 + s * v, MAX_FOLLOW_UP)
        return int(np.sum(cens < times))

    lo, hi = 0.0, 10 * MAX_FOLLOW_UP
    for _ in range(60):
        mid = (lo + hi) / 2
        if n_censored(mid) > target:
            lo = mid
        else:
            hi = mid
    cens = np.minimum(1.0 + hi * v, MAX_FOLLOW_UP)
    event = (times <= cens).astype(np.int64)
    months = np.round(np.minimum(times, cens), 2)
    return months, event


def _covariates(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Plausible age (years) and sex per case, independent of the risk (their own stream)."""
    age = np.clip(np.rint(rng.normal(AGE_MEAN, AGE_SD, n)), *AGE_RANGE).astype(int)
    sex = np.where(rng.uniform(size=n) < FRACTION_FEMALE, "female", "male")
    return pd.DataFrame({"age": age, "sex": sex})


def _pick_genes(
    rng: np.random.Generator, gene_families_csv: str | os.PathLike[str], genes_per_family: int
) -> list[str]:
    """`genes_per_family` genes from each family column (CSV order kept), unique overall."""
    path = Path(gene_families_csv)
    genes: list[str] = []
    for family, members in load_gene_families(path).items():
        if len(members) < genes_per_family:
            raise ValueError(
                f"{path}: family {family!r} has {len(members)} genes, fewer than "
                f"genes_per_family={genes_per_family}"
            )
        idx = np.sort(rng.choice(len(members), size=genes_per_family, replace=False))
        genes.extend(members[i] for i in idx)
    return list(dict.fromkeys(genes))


def _omics(
    rng: np.random.Generator, genes: list[str], risk: np.ndarray, signal_frac: float
) -> tuple[pd.DataFrame, list[str]]:
    """Log-expression and CNV columns; a `signal_frac` share of genes tracks the risk."""
    n, g = len(risk), len(genes)
    n_signal = int(round(signal_frac * g))
    signal = np.zeros(g, bool)
    signal[rng.choice(g, size=n_signal, replace=False)] = True
    sign = rng.choice([-1.0, 1.0], size=g)
    load = np.where(signal, rng.uniform(0.45, 0.7, size=g), 0.0)  # correlation with risk
    mu = rng.uniform(2.0, 10.0, size=g)
    sd = rng.uniform(0.5, 1.5, size=g)
    noise = rng.standard_normal((n, g))
    z = risk[:, None] * (sign * load)[None, :] + noise * np.sqrt(1.0 - load**2)[None, :]
    rnaseq = np.clip(mu + sd * z, 0.0, None)
    cnv_load = np.where(signal, 0.5, 0.0)
    zc = risk[:, None] * (sign * cnv_load)[None, :] + rng.standard_normal((n, g))
    cnv = np.digitize(zc, [-2.0, -1.0, 1.0, 2.0]) - 2
    data = {f"{gene}_rnaseq": np.round(rnaseq[:, j], 4) for j, gene in enumerate(genes)}
    data.update({f"{gene}_cnv": cnv[:, j].astype(np.int64) for j, gene in enumerate(genes)})
    return pd.DataFrame(data), [gene for gene, s in zip(genes, signal, strict=True) if s]


# --------------------------------------------------------------------------------------------
# Slides
# --------------------------------------------------------------------------------------------


def _blob_polygon(
    rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, n_pts: int = 96
) -> np.ndarray:
    """An irregular closed polygon: an ellipse whose radius carries a few random harmonics."""
    theta = np.linspace(0, 2 * np.pi, n_pts, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 6):
        r += rng.uniform(0, 0.18 / (k - 1)) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    pts = np.stack([cx + rx * r * np.cos(theta), cy + ry * r * np.sin(theta)], axis=1)
    return np.rint(pts).astype(np.int32)


class Field(NamedTuple):
    """One rendered 20x field: RGB, tissue mask (holes removed), planted regions, their grade."""

    rgb: np.ndarray
    tissue: np.ndarray
    region: np.ndarray
    grade: float


def _tissue_mask(
    rng: np.random.Generator, width: int, height: int, n_blobs: int | None
) -> np.ndarray:
    """1-3 irregular tissue blobs side by side (~30-60 % of the field), each with white lumens."""
    mask = np.zeros((height, width), np.uint8)
    n_blobs = int(rng.integers(1, 4)) if n_blobs is None else int(n_blobs)
    shares = rng.dirichlet(np.full(n_blobs, 4.0)) + 0.4
    edges = np.concatenate([[0.0], np.cumsum(shares / shares.sum()) * width])
    holes: list[np.ndarray] = []
    for left, right in zip(edges[:-1], edges[1:], strict=True):
        rx = rng.uniform(0.72, 0.9) * (right - left) / 2
        ry = rng.uniform(0.72, 0.9) * height / 2
        cx = rng.uniform(left + rx, right - rx) if right - left > 2 * rx else (left + right) / 2
        cy = rng.uniform(ry, height - ry)
        cv2.fillPoly(mask, [_blob_polygon(rng, cx, cy, rx, ry)], 1)
        n_holes = int(rng.integers(1, 3))
        along_x = rx >= ry  # several lumens sit along the blob's long axis
        cap_x, cap_y = (
            0.42 * rx / (n_holes if along_x else 1),
            0.42 * ry / (1 if along_x else n_holes),
        )
        for k in range(n_holes):  # lumens: ~85-130 µm radius at 0.5 µm/px
            hr = rng.uniform(170, 260)
            hrx, hry = min(hr, cap_x), min(hr * rng.uniform(0.8, 1.3), cap_y)
            offset = 0.0 if n_holes == 1 else (k - 0.5) * 0.9
            jx, jy = rng.uniform(-0.1, 0.1, size=2)
            hx = cx + (offset + jx) * rx if along_x else cx + jx * rx
            hy = cy + jy * ry if along_x else cy + (offset + jy) * ry
            holes.append(_blob_polygon(rng, hx, hy, hrx, hry))
    for hole in holes:  # one call per polygon: overlapping polygons would XOR in one call
        cv2.fillPoly(mask, [hole], 0)
    return mask


def _nuclei(
    rng: np.random.Generator,
    img: np.ndarray,
    where: np.ndarray,
    per_px: float,
    mean_r: float,
    colour: np.ndarray,
) -> None:
    """Draw haematoxylin nuclei (`per_px` per px² of `where`, radius ~ mean_r) onto img."""
    ys, xs = np.nonzero(where[::4, ::4])
    n_nuc = int(per_px * 16 * len(xs))
    if not n_nuc:
        return
    pick = rng.integers(0, len(xs), size=n_nuc)
    px = xs[pick] * 4 + rng.integers(0, 4, size=n_nuc)
    py = ys[pick] * 4 + rng.integers(0, 4, size=n_nuc)
    radii = np.clip(rng.normal(mean_r, 1.0, size=n_nuc), 2, 10).round().astype(int)
    haem = tuple(float(v) for v in colour + rng.normal(0, 5, 3))
    for x, y, r in zip(px.tolist(), py.tolist(), radii.tolist(), strict=True):
        cv2.circle(img, (x, y), r, haem, -1, lineType=cv2.LINE_AA)


def render_field(
    rng: np.random.Generator,
    risk: float,
    width: int = WIDTH_20X,
    height: int = HEIGHT_20X,
    n_blobs: int | None = None,
) -> Field:
    """Render an H&E-like field at 20x whose only pathology risk signal is planted regions.

    Normal tissue (pink stroma, sparse small nuclei) does not depend on the risk. Inside it,
    1-3 tumour-like regions (purple stroma, crowded large dark nuclei) cover a share of the
    tissue that grows with the risk (`regions.planted_fraction`: ~2-35 %, per-slide noise),
    and their nuclei get denser and larger with the risk too (`grade`, 0-1).
    """
    mask = _tissue_mask(rng, width, height, n_blobs)
    region = plant_regions(rng, mask, planted_fraction(rng, risk))
    grade = float(1.0 / (1.0 + np.exp(-(GRADE_SLOPE * risk + rng.normal(0, GRADE_NOISE)))))

    low = rng.normal(0, 1, size=(height // 32 + 1, width // 32 + 1)).astype(np.float32)
    texture = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    img = np.full((height, width, 3), 240, np.uint8)
    for colour, where in ((NORMAL_STROMA, mask), (TUMOUR_STROMA, region)):
        rgb = np.asarray(colour, float) + rng.normal(0, 4, 3)
        layer = cv2.merge([cv2.convertScaleAbs(texture, alpha=14.0, beta=float(c)) for c in rgb])
        cv2.copyTo(layer, where, img)
    # nuclei: sparse and small everywhere; crowded, large and dark in the planted regions
    _nuclei(
        rng,
        img,
        mask,
        np.exp(rng.normal(0, 0.3)) / 700.0,
        4.0 + rng.normal(0, 0.4),
        np.array(NORMAL_NUCLEI),
    )
    _nuclei(
        rng,
        img,
        region,
        TUMOUR_DENSITY * (1 + GRADE_SPAN * (grade - 0.5)) * np.exp(rng.normal(0, 0.2)) / 700.0,
        TUMOUR_RADIUS + 2 * GRADE_RADIUS * (grade - 0.5) + rng.normal(0, 0.4),
        np.array(TUMOUR_NUCLEI),
    )
    img[mask == 0] = 240
    img = cv2.GaussianBlur(img, (3, 3), 0)
    return Field(img, mask, region, grade)


def render_tissue(
    rng: np.random.Generator,
    risk: float,
    width: int = WIDTH_20X,
    height: int = HEIGHT_20X,
    n_blobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`render_field` without its region mask: (RGB uint8, tissue mask with holes removed)."""
    field = render_field(rng, risk, width, height, n_blobs)
    return field.rgb, field.tissue


def slide_plan(seed: int, cohort: str, slide_ids: list[str]) -> pd.DataFrame:
    """Per slide: scan magnification (40/20) and whether MPP is left out (>= 1 per cohort)."""
    n = len(slide_ids)
    rng = _rng(seed, cohort, _SLIDE_PLAN)
    is40 = rng.uniform(size=n) < FRACTION_40X
    if n >= 2:  # both magnifications in every cohort
        order = rng.permutation(n)
        is40[order[0]], is40[order[1]] = True, False
    no_mpp = rng.uniform(size=n) < FRACTION_NO_MPP
    no_mpp[int(rng.integers(0, n))] = True
    return pd.DataFrame(
        {
            "slide_id": slide_ids,
            "app_mag": np.where(is40, 40.0, 20.0),
            "mpp": np.where(is40, MPP_40X, MPP_20X),
            "no_mpp": no_mpp,
        }
    )


def _write_slide(path: str, rgb20: np.ndarray, app_mag: float, mpp: float | None) -> None:
    """Write one scan: the 20x field as is, or upsampled 2x for a 40x scan."""
    if app_mag == 40.0:
        h, w = rgb20.shape[:2]
        rgb = cv2.resize(rgb20, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
        write_svs(
            path, rgb, mpp=mpp, app_mag=40.0, downsamples=DOWNSAMPLES_40X, quality=JPEG_QUALITY
        )
    else:
        write_svs(
            path, rgb20, mpp=mpp, app_mag=20.0, downsamples=DOWNSAMPLES_20X, quality=JPEG_QUALITY
        )


class _SlideTask(NamedTuple):
    """What one slide's rendering needs (picklable, for a process pool)."""

    seed: int
    cohort: str
    slide_id: str
    case_id: str
    path: str
    risk: float
    app_mag: float
    mpp: float | None
    region_file: str


def _make_slide(t: _SlideTask) -> tuple[Any, ...]:
    """Render one slide from its own random stream, write it and its regions; its table row."""
    field = render_field(_rng(t.seed, t.cohort, _SLIDE, _stable_hash(t.slide_id)), t.risk)
    _write_slide(t.path, field.rgb, t.app_mag, t.mpp)
    scale = 2.0 if t.app_mag == 40.0 else 1.0
    fraction = float(field.region.sum()) / max(int(field.tissue.sum()), 1)
    collection = region_geojson(field.region, scale, slide_id=t.slide_id, fraction=fraction)
    write_region_file(t.region_file, collection)
    return (
        t.slide_id,
        t.case_id,
        round(t.risk, 6),
        round(fraction, 6),
        int(field.region.sum() * scale**2),
        round(field.grade, 6),
        len(collection["features"]),
        t.app_mag,
        scale,
    )


def make_cohort(
    cohort: str,
    sheet: pd.DataFrame,
    *,
    gene_families_csv: str,
    omics_out: str,
    clinical_out: str,
    seed: int = 2025,
    genes_per_family: int = 30,
    n_signal_genes_frac: float = 0.2,
    write_slides: bool = True,
    executor: Executor | None = None,
) -> None:
    """Write a cohort's slides (at the sheet's paths), omics, clinical and truth tables.

    Beside the clinical table: `truth.tsv` (hidden risk per case), and with the slides
    `regions.tsv` and `regions/{slide_id}.geojson` (the planted regions, `region_paths`).
    `write_slides=False` writes only the tables (same values: every part has its own stream).
    `executor`: renders and writes the slides in parallel (e.g. a process pool; same files).
    """
    required = {"cohort", "case_id", "slide_id", "path"}
    missing = required - set(sheet.columns)
    if missing:
        raise KeyError(f"slide sheet lacks columns {sorted(missing)}")
    rows = sheet[sheet["cohort"].astype(str) == cohort]
    if rows.empty:
        raise ValueError(f"slide sheet has no rows for cohort {cohort!r}")
    if rows["slide_id"].duplicated().any():
        dup = rows.loc[rows["slide_id"].duplicated(), "slide_id"].tolist()
        raise ValueError(f"cohort {cohort}: duplicate slide ids in the sheet: {dup[:5]}")
    if not 0 <= n_signal_genes_frac <= 1:
        raise ValueError(f"n_signal_genes_frac must be in [0, 1], got {n_signal_genes_frac}")
    rows = rows.sort_values("slide_id", kind="stable")  # independent of the sheet's row order
    cases = sorted(set(rows["case_id"].astype(str)))

    rng = _rng(seed, cohort, _CLINICAL)
    risk = rng.standard_normal(len(cases))
    months, event = _survival(rng, risk)
    clinical = pd.DataFrame({"case_id": cases, "survival_months": months, "event": event})
    covariates = _covariates(_rng(seed, cohort, _COVARIATES), len(cases))
    clinical = pd.concat([clinical, covariates], axis=1)
    truth = pd.DataFrame({"case_id": cases, "hidden_risk": np.round(risk, 6)})

    orng = _rng(seed, cohort, _OMICS)
    genes = _pick_genes(orng, gene_families_csv, genes_per_family)
    omics, _signal = _omics(orng, genes, risk, n_signal_genes_frac)
    omics.insert(0, "case_id", cases)

    risk_of = dict(zip(cases, risk.tolist(), strict=True))
    plan = slide_plan(seed, cohort, rows["slide_id"].astype(str).tolist())
    slides = zip(rows.itertuples(index=False), plan.itertuples(), strict=True)
    paths = region_paths(clinical_out, rows["slide_id"].astype(str).tolist())
    tasks = [
        _SlideTask(
            seed,
            cohort,
            str(row.slide_id),
            str(row.case_id),
            str(row.path),
            risk_of[str(row.case_id)],
            float(p.app_mag),
            None if p.no_mpp else float(p.mpp),
            str(paths["regions"][str(row.slide_id)]),
        )
        for row, p in (slides if write_slides else [])
    ]
    # Each slide has its own random stream, so the pool's order cannot change a byte.
    region_rows = list((executor.map if executor is not None else map)(_make_slide, tasks))

    _write_tsv(omics, omics_out)
    _write_tsv(clinical, clinical_out)
    _write_tsv(truth, paths["truth"])
    if write_slides:
        columns = [
            "slide_id",
            "case_id",
            "hidden_risk",
            "region_fraction",
            "region_area_level0",
            "region_grade",
            "n_regions",
            "scan_magnification",
            "level0_per_field_px",
        ]
        _write_tsv(pd.DataFrame(region_rows, columns=columns), paths["table"])


def region_paths(clinical_out: str | os.PathLike[str], slide_ids: list[str]) -> dict[str, Any]:
    """Where a cohort's hidden truth goes, beside its clinical table: `truth` (truth.tsv),
    `table` (regions.tsv: per slide its region share of the tissue) and `regions`
    ({slide_id: regions/{slide_id}.geojson})."""
    base = Path(clinical_out).parent
    return {
        "truth": base / "truth.tsv",
        "table": base / "regions.tsv",
        "regions": {s: base / "regions" / f"{s}.geojson" for s in slide_ids},
    }


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Command line: `sheet` writes the slide sheet, `cohort` generates one cohort."""
    parser = argparse.ArgumentParser(prog="python -m mmsurv.demo.cohort", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_sheet = sub.add_parser("sheet", help="write the demo slide sheet (TSV)")
    p_sheet.add_argument("--out", required=True, help="output TSV path")
    p_sheet.add_argument("--cohorts", nargs="+", default=list(DEFAULT_COHORTS))
    p_sheet.add_argument("--seed", type=int, default=2025)
    p_sheet.add_argument("--n-cases", type=int, default=50, help="cases per cohort")
    p_sheet.add_argument("--data-dir", default="results/demo_data")
    p_coh = sub.add_parser("cohort", help="generate one cohort's slides and tables")
    p_coh.add_argument("--cohort", required=True)
    p_coh.add_argument("--sheet", required=True, help="slide sheet TSV")
    p_coh.add_argument("--gene-families", required=True, help="gene families CSV")
    p_coh.add_argument("--omics-out", required=True)
    p_coh.add_argument("--clinical-out", required=True)
    p_coh.add_argument("--seed", type=int, default=2025)
    p_coh.add_argument("--genes-per-family", type=int, default=30)
    p_coh.add_argument("--signal-frac", type=float, default=0.2, help="share of signal genes")
    args = parser.parse_args(argv)
    if args.command == "sheet":
        sheet = make_sheet(
            args.cohorts, n_cases=args.n_cases, seed=args.seed, data_dir=args.data_dir
        )
        _write_tsv(sheet, args.out)
    else:
        sheet = pd.read_csv(args.sheet, sep="\t", dtype=str)
        make_cohort(
            args.cohort,
            sheet,
            gene_families_csv=args.gene_families,
            omics_out=args.omics_out,
            clinical_out=args.clinical_out,
            seed=args.seed,
            genes_per_family=args.genes_per_family,
            n_signal_genes_frac=args.signal_frac,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
