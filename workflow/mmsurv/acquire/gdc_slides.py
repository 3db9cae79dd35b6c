"""GDC diagnostic slides of a cohort: the manifest, the workflow's slide sheet, fetch_slide."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from mmsurv.acquire.gdc_api import (
    ManifestError,
    and_filter,
    checked_file,
    cohort_projects,
    data_url,
    in_filter,
    query_hits,
    query_settings,
    slide_path,
)
from mmsurv.acquire.retry import redact_url
from mmsurv.acquire.transfer import (
    DEFAULT_FILES_ENDPOINT,
    download_file,
    download_settings,
    transfer_options,
)
from mmsurv.io import atomic_path

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

# what one manifest row holds; `cohort` is the workflow's name for the project(s)
MANIFEST_COLUMNS = [
    "cohort",
    "project_id",
    "case_id",
    "slide_id",
    "file_id",
    "file_name",
    "file_size",
    "md5sum",
]
# fields requested from the files endpoint (GDC field names)
MANIFEST_FIELDS = [
    "file_id",
    "file_name",
    "file_size",
    "md5sum",
    "data_format",
    "experimental_strategy",
    "access",
    "cases.submitter_id",
    "cases.project.project_id",
]
# extra slide-sheet columns that let the download rule fetch and verify each slide
SHEET_COLUMNS = [
    "cohort",
    "case_id",
    "slide_id",
    "path",
    "file_id",
    "file_name",
    "file_size",
    "md5sum",
]
SLIDE_SUFFIX = ".svs"
UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


# --------------------------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------------------------


def slide_filters(
    project_ids: Sequence[str],
    *,
    data_format: str = "SVS",
    experimental_strategy: str = "Diagnostic Slide",
    access: str = "open",
) -> dict[str, Any]:
    """GDC filter JSON: open-access diagnostic SVS slides of the given projects."""

    return and_filter(
        [
            in_filter("cases.project.project_id", project_ids),
            in_filter("files.data_format", [data_format]),
            in_filter("files.experimental_strategy", [experimental_strategy]),
            in_filter("files.access", [access]),
        ]
    )


def _hit_to_row(hit: Mapping[str, Any], project_ids: Sequence[str]) -> dict[str, Any]:
    """One files-endpoint hit as a slide manifest row; raises ManifestError naming the file."""
    row, _ = checked_file(hit, project_ids)
    name = row["file_name"]
    if not name.endswith(SLIDE_SUFFIX):
        raise ManifestError(
            f"GDC file {row['file_id']}: file name {name!r} does not end with {SLIDE_SUFFIX}"
        )
    # a suffix, not a character set (cf. rstrip)
    return {**row, "slide_id": name[: -len(SLIDE_SUFFIX)]}


def query_slide_manifest(
    project_ids: Sequence[str],
    *,
    cohort: str | None = None,
    files_endpoint: str = DEFAULT_FILES_ENDPOINT,
    page_size: int = 500,
    timeout: float = 60.0,
    retries: int = 5,
    backoff: float = 2.0,
    max_backoff: float = 120.0,
    session: requests.Session | None = None,
) -> pd.DataFrame:
    """Page through the files endpoint and return the slide manifest (MANIFEST_COLUMNS).

    `cohort` names the rows (default: the single project id). Every project must have at least
    one slide, which catches misspelt project ids. Rows are sorted by slide id.
    """
    project_ids = list(project_ids)
    if not project_ids:
        raise ValueError("query_slide_manifest needs at least one project id")
    if cohort is None:
        if len(project_ids) != 1:
            raise ValueError(f"several projects {project_ids} need an explicit cohort name")
        cohort = project_ids[0]
    what = f"GDC slide listing of {', '.join(project_ids)} ({redact_url(files_endpoint)})"
    hits = query_hits(
        slide_filters(project_ids),
        MANIFEST_FIELDS,
        what=what,
        files_endpoint=files_endpoint,
        page_size=page_size,
        timeout=timeout,
        retries=retries,
        backoff=backoff,
        max_backoff=max_backoff,
        session=session,
    )
    rows = [_hit_to_row(h, project_ids) for h in hits]
    manifest = pd.DataFrame(rows, columns=[c for c in MANIFEST_COLUMNS if c != "cohort"])
    manifest.insert(0, "cohort", cohort)
    _check_manifest(manifest, f"{what}")
    missing = [p for p in project_ids if p not in set(manifest["project_id"])]
    if missing:
        raise ManifestError(
            f"{what}: no open diagnostic slide for project(s) {missing}; check the project ids "
            "(config cohorts / download.projects)"
        )
    return manifest.sort_values("slide_id").reset_index(drop=True)


def _check_manifest(manifest: pd.DataFrame, source: str) -> None:
    """Duplicated file or slide ids make the sheet ambiguous: refuse them, naming a few."""
    for col in ("file_id", "slide_id"):
        dup = manifest.loc[manifest[col].duplicated(keep=False), col].unique()
        if len(dup):
            raise ManifestError(f"{source}: duplicated {col}(s) {sorted(dup)[:10]}")


def write_manifest(manifest: pd.DataFrame, path: PathLike) -> None:
    """Write a manifest TSV atomically."""
    with atomic_path(path) as tmp:
        manifest[MANIFEST_COLUMNS].to_csv(tmp, sep="\t", index=False)


def read_manifest(path: PathLike) -> pd.DataFrame:
    """Read a manifest TSV written by `write_manifest`, checking its columns."""
    if not Path(path).is_file():
        raise ManifestError(f"slide manifest {path} does not exist")
    dtypes = {c: str for c in MANIFEST_COLUMNS if c != "file_size"}
    manifest = pd.read_csv(path, sep="\t", dtype=dtypes)
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise ManifestError(f"slide manifest {path} lacks column(s) {missing}")
    _check_manifest(manifest, f"slide manifest {path}")
    return manifest


# --------------------------------------------------------------------------------------------
# slide sheet
# --------------------------------------------------------------------------------------------


def manifest_to_sheet(manifests: Iterable[pd.DataFrame], slide_dir: PathLike) -> pd.DataFrame:
    """The slide sheet (SHEET_COLUMNS) of one or more cohort manifests, sorted by slide id."""
    frames = list(manifests)
    if not frames:
        raise ValueError("manifest_to_sheet needs at least one manifest")
    manifest = pd.concat(frames, ignore_index=True)
    _check_manifest(manifest, "slide manifests")
    pairs = zip(manifest["file_id"], manifest["file_name"], strict=True)
    sheet = manifest.assign(path=[slide_path(slide_dir, f, n) for f, n in pairs])
    return sheet[SHEET_COLUMNS].sort_values("slide_id").reset_index(drop=True)


def write_slide_sheet(sheet: pd.DataFrame, path: PathLike) -> None:
    """Write the slide sheet TSV atomically (the workflow reads it at parse time)."""
    with atomic_path(path) as tmp:
        sheet.to_csv(tmp, sep="\t", index=False)


def write_sheet_from_manifests(
    manifests: Sequence[PathLike], slide_dir: PathLike, out: PathLike
) -> pd.DataFrame:
    """Read cohort manifest TSVs and write their slide sheet to `out`."""
    sheet = manifest_to_sheet([read_manifest(m) for m in manifests], slide_dir)
    write_slide_sheet(sheet, out)
    log.info(
        "slide sheet %s: %d slides, %d cases, %.1f GiB to download into %s",
        out,
        len(sheet),
        sheet["case_id"].nunique(),
        sheet["file_size"].sum() / (1 << 30),
        slide_dir,
    )
    return sheet


# --------------------------------------------------------------------------------------------
# config-driven stages (called by the Snakemake scripts and the CLI)
# --------------------------------------------------------------------------------------------


def write_cohort_manifest(
    cohort: str,
    out: PathLike,
    *,
    download: Mapping[str, Any] | None = None,
    project_ids: Sequence[str] | None = None,
    session: requests.Session | None = None,
) -> pd.DataFrame:
    """Query the slides of one cohort with the `download` config block and write its manifest."""
    projects = list(project_ids) if project_ids else cohort_projects(cohort, download)
    manifest = query_slide_manifest(
        projects,
        cohort=cohort,
        session=session,
        **query_settings(download),
    )
    write_manifest(manifest, out)
    log.info(
        "%s: %d slides of %d cases, %.1f GiB -> %s",
        cohort,
        len(manifest),
        manifest["case_id"].nunique(),
        manifest["file_size"].sum() / (1 << 30),
        out,
    )
    return manifest


def fetch_slide(
    file_id: str,
    dest: PathLike,
    *,
    md5: str | None,
    size: int | None,
    slide_id: str | None = None,
    download: Mapping[str, Any] | None = None,
    session: requests.Session | None = None,
) -> Path:
    """Download one slide from the GDC data endpoint with the `download` config block."""
    s = download_settings(download)
    label = f"slide {slide_id} (GDC file {file_id})" if slide_id else f"GDC file {file_id}"
    return download_file(
        data_url(s["data_endpoint"], file_id),
        dest,
        md5=md5,
        size=size,
        **transfer_options(s),
        verify_existing=bool(s["verify_existing"]),
        label=label,
        session=session,
    )
