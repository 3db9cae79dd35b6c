"""GDC files-endpoint access shared by slides and omics: filters, paged queries, file hits."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from mmsurv.acquire.retry import DownloadError, GDCError, http_session, post_json, redact_url
from mmsurv.acquire.transfer import MD5_RE, download_settings

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


class ManifestError(GDCError):
    """The files endpoint answered something that cannot become a slide manifest."""


# --------------------------------------------------------------------------------------------
# queries
# --------------------------------------------------------------------------------------------


def in_filter(field: str, values: Sequence[str]) -> dict[str, Any]:
    """GDC filter clause: ``field`` is one of ``values``."""
    return {"op": "in", "content": {"field": field, "value": list(values)}}


def and_filter(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """GDC filter: every clause holds."""
    return {"op": "and", "content": clauses}


def checked_file(
    hit: Mapping[str, Any], project_ids: Sequence[str]
) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """The checked file fields of a hit (one case, md5, size) and its case; errors name the file."""
    fid = hit.get("file_id") or hit.get("id") or "<no file_id>"
    for key in ("file_id", "file_name", "file_size", "md5sum", "cases"):
        if hit.get(key) in (None, "", []):
            raise ManifestError(f"GDC file {fid}: hit has no `{key}`: {dict(hit)}")
    cases = hit["cases"]
    if len(cases) != 1:
        ids = [c.get("submitter_id") for c in cases]
        raise ManifestError(
            f"GDC file {fid} ({hit['file_name']}) belongs to {len(cases)} cases {ids}"
        )
    case = cases[0]
    case_id = case.get("submitter_id")
    project_id = (case.get("project") or {}).get("project_id")
    if not case_id or not project_id:
        raise ManifestError(f"GDC file {fid}: case without submitter_id/project_id: {case}")
    if project_id not in project_ids:
        raise ManifestError(
            f"GDC file {fid}: project {project_id} is not one of the requested {list(project_ids)}"
        )
    name = str(hit["file_name"])
    md5 = str(hit["md5sum"]).lower()
    if not MD5_RE.match(md5):
        raise ManifestError(
            f"GDC file {fid} ({name}): md5sum {hit['md5sum']!r} is not 32 hex digits"
        )
    size = int(hit["file_size"])
    if size <= 0:
        raise ManifestError(f"GDC file {fid} ({name}): file_size {size} is not positive")
    fields = {
        "project_id": project_id,
        "case_id": str(case_id),
        "file_id": str(hit["file_id"]),
        "file_name": name,
        "file_size": size,
        "md5sum": md5,
    }
    return fields, case


def query_hits(
    filters: Mapping[str, Any],
    fields: Sequence[str],
    *,
    what: str,
    files_endpoint: str,
    page_size: int,
    timeout: float,
    retries: int,
    backoff: float,
    max_backoff: float,
    session: requests.Session | None,
) -> list[dict[str, Any]]:
    """Every hit of a files-endpoint query: POST pages of `page_size` until `pagination.total`.

    Pages are sorted by file id so that they neither overlap nor skip; a failed page is retried
    like a download; a total that changes while paging or an empty page before the end is a
    ManifestError naming `what`.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    http = http_session(session)
    base = {
        "filters": filters,
        "fields": ",".join(fields),
        "format": "JSON",
        "sort": "file_id:asc",  # a stable order, so pages neither overlap nor skip
        "size": page_size,
    }
    hits: list[dict[str, Any]] = []
    start, total = 0, None
    while total is None or start < total:
        payload = {**base, "from": start}
        try:
            doc = post_json(
                http,
                files_endpoint,
                payload,
                what=what,
                timeout=timeout,
                retries=retries,
                backoff=backoff,
                max_backoff=max_backoff,
            )
        except DownloadError as err:
            raise ManifestError(str(err)) from err
        try:
            page = doc["data"]["hits"]
            page_total = int(doc["data"]["pagination"]["total"])
        except (KeyError, TypeError, ValueError) as err:
            raise ManifestError(
                f"{what}: answer at from={start} lacks data.hits / data.pagination.total: "
                f"{str(doc)[:300]}"
            ) from err
        if total is not None and page_total != total:
            raise ManifestError(
                f"{what}: the total changed from {total} to {page_total} while paging; retry later"
            )
        total = page_total
        if not page and start < total:
            raise ManifestError(f"{what}: empty page at from={start} although total={total}")
        hits.extend(page)
        log.info("%s: %d/%d files", what, len(hits), total)
        start += len(page)
    return hits


# --------------------------------------------------------------------------------------------
# the `download` config block and file locations
# --------------------------------------------------------------------------------------------


def cohort_projects(cohort: str, download: Mapping[str, Any] | None) -> list[str]:
    """GDC project ids of a cohort: `download.projects[cohort]`, else the cohort name itself."""
    projects = (download or {}).get("projects", {}).get(cohort, [cohort])
    if isinstance(projects, str):
        projects = [projects]
    return list(projects)


def query_settings(download: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments of the files-endpoint queries from the `download` config block."""
    s = download_settings(download)
    return {
        "files_endpoint": s["files_endpoint"],
        "page_size": int(s["page_size"]),
        "timeout": float(s["timeout"]),
        "retries": int(s["retries"]),
        "backoff": float(s["backoff"]),
        "max_backoff": float(s["max_backoff"]),
    }


def data_url(data_endpoint: str, file_id: str) -> str:
    """The download URL of one file from the `download.data_endpoint` template."""
    if "{file_id}" not in data_endpoint:
        raise ValueError(
            f"download.data_endpoint {redact_url(data_endpoint)!r} must contain the placeholder "
            "{file_id}"
        )
    return data_endpoint.replace("{file_id}", file_id)


def slide_path(slide_dir: PathLike, file_id: str, file_name: str) -> str:
    """Where a downloaded GDC file (slide or omics) lives: `{dir}/{file_id}/{file_name}`.

    That is the layout of gdc-client, so a directory it filled serves as well.
    """
    return f"{str(slide_dir).rstrip('/')}/{file_id}/{file_name}"
