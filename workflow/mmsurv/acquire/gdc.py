"""GDC access: list the open diagnostic slides and omics files of TCGA projects, download them.

Slides: `query_slide_manifest` → slide sheet → `fetch_slide`. Omics (acquisition.omics.source
gdc): `query_omics_manifest` lists the STAR-counts and gene-level copy-number files per sample,
`fetch_omics_files` downloads one modality of a cohort; the parsers are in `mmsurv.acquire.tcga`.

The NCI Genomic Data Commons (GDC) API has a search endpoint (`/files`, paginated JSON) and a
data endpoint (`/data/{file_id}`, HTTP Range supported). Both URLs are parameters here and config
keys in the workflow (`download.files_endpoint`, `download.data_endpoint`), so tests and mirrors
point them elsewhere. HTTP goes through `requests` (a dependency of Snakemake itself).

CLI: `python -m mmsurv.acquire.gdc manifest|sheet|download --help`.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from mmsurv.io import atomic_path, setup_logging

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

DEFAULT_FILES_ENDPOINT = "https://api.gdc.cancer.gov/files"
DEFAULT_DATA_ENDPOINT = "https://api.gdc.cancer.gov/data/{file_id}"
USER_AGENT = "mmsurv-workflow (python-requests)"

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
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_CONTENT_RANGE_RE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
_MIB = 1 << 20


class GDCError(RuntimeError):
    """A GDC request or download that failed; the message names the project, file or slide."""


class ManifestError(GDCError):
    """The files endpoint answered something that cannot become a slide manifest."""


class DownloadError(GDCError):
    """A file that could not be downloaded (after the configured retries, or a 4xx answer)."""


class ChecksumError(DownloadError):
    """A downloaded file whose size or md5 differs from the manifest; it was deleted."""


class _Transient(Exception):
    """One failed attempt that is worth retrying (connection error, timeout, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --------------------------------------------------------------------------------------------
# retries
# --------------------------------------------------------------------------------------------


def _retry_after(response: requests.Response) -> float | None:
    """Seconds from a numeric `Retry-After` header, or None."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _check_status(response: requests.Response, what: str) -> None:
    """Raise _Transient on 5xx/429 (worth retrying) and DownloadError on any other 4xx."""
    status = response.status_code
    if status == 429 or status >= 500:
        raise _Transient(f"HTTP {status} {response.reason}", _retry_after(response))
    if status >= 400:
        body = response.text[:300].strip()
        raise DownloadError(
            f"{what}: HTTP {status} {response.reason} from {response.url} (not retried): {body}"
        )


_RETRIED = (
    requests.ConnectionError,  # refused, reset, DNS, read timeouts while streaming
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,  # connection closed before Content-Length bytes
    _Transient,
)


def _with_retries(
    attempt: Callable[[], Any],
    *,
    what: str,
    retries: int,
    backoff: float,
    max_backoff: float,
    made_progress: Callable[[], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Call `attempt` until it succeeds; transient failures are retried with exponential back-off.

    An attempt after which `made_progress()` is true (a download that grew its `.part` file) does
    not count against `retries`, so a long transfer over a flaky link is not abandoned while it
    advances; the count restarts from zero.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    failures = 0
    while True:
        try:
            return attempt()
        except _RETRIED as err:
            reason = f"{type(err).__name__}: {err}" if not isinstance(err, _Transient) else str(err)
            if made_progress is not None and made_progress():
                failures = 0
                log.warning("%s: transfer interrupted (%s); resuming", what, reason)
                continue
            failures += 1
            if failures > retries:
                raise DownloadError(
                    f"{what}: giving up after {failures} failed attempt(s) "
                    f"(download.retries={retries}); last error: {reason}"
                ) from err
            delay = min(backoff * 2 ** (failures - 1), max_backoff)
            if isinstance(err, _Transient) and err.retry_after is not None:
                delay = min(max(delay, err.retry_after), max_backoff)
            log.warning(
                "%s: attempt %d/%d failed (%s); retrying in %.2f s",
                what,
                failures,
                retries + 1,
                reason,
                delay,
            )
            sleep(delay)


def _session(session: requests.Session | None) -> requests.Session:
    """The given session, or a new one with this package's User-Agent."""
    if session is not None:
        return session
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    return s


# --------------------------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------------------------


def _in(field: str, values: Sequence[str]) -> dict[str, Any]:
    """GDC filter clause: ``field`` is one of ``values``."""
    return {"op": "in", "content": {"field": field, "value": list(values)}}


def _all_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """GDC filter: every clause holds."""
    return {"op": "and", "content": clauses}


def slide_filters(
    project_ids: Sequence[str],
    *,
    data_format: str = "SVS",
    experimental_strategy: str = "Diagnostic Slide",
    access: str = "open",
) -> dict[str, Any]:
    """GDC filter JSON: open-access diagnostic SVS slides of the given projects."""

    return _all_of(
        [
            _in("cases.project.project_id", project_ids),
            _in("files.data_format", [data_format]),
            _in("files.experimental_strategy", [experimental_strategy]),
            _in("files.access", [access]),
        ]
    )


def _checked_file(
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
    if not _MD5_RE.match(md5):
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


def _hit_to_row(hit: Mapping[str, Any], project_ids: Sequence[str]) -> dict[str, Any]:
    """One files-endpoint hit as a slide manifest row; raises ManifestError naming the file."""
    row, _ = _checked_file(hit, project_ids)
    name = row["file_name"]
    if not name.endswith(SLIDE_SUFFIX):
        raise ManifestError(
            f"GDC file {row['file_id']}: file name {name!r} does not end with {SLIDE_SUFFIX}"
        )
    # a suffix, not a character set (cf. rstrip)
    return {**row, "slide_id": name[: -len(SLIDE_SUFFIX)]}


def _query_hits(
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
    http = _session(session)
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

        def _page(payload: dict[str, Any] = payload) -> dict[str, Any]:
            response = http.post(files_endpoint, json=payload, timeout=timeout)
            _check_status(response, what)
            try:
                return response.json()
            except ValueError as err:
                raise _Transient(f"response is not JSON: {response.text[:200]!r}") from err

        try:
            doc = _with_retries(
                _page, what=what, retries=retries, backoff=backoff, max_backoff=max_backoff
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
    what = f"GDC slide listing of {', '.join(project_ids)} ({files_endpoint})"
    hits = _query_hits(
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


def slide_path(slide_dir: PathLike, file_id: str, file_name: str) -> str:
    """Where a downloaded GDC file (slide or omics) lives: `{dir}/{file_id}/{file_name}`.

    That is the layout of gdc-client, so a directory it filled serves as well.
    """
    return f"{str(slide_dir).rstrip('/')}/{file_id}/{file_name}"


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
# download
# --------------------------------------------------------------------------------------------


def data_url(data_endpoint: str, file_id: str) -> str:
    """The download URL of one file from the `download.data_endpoint` template."""
    if "{file_id}" not in data_endpoint:
        raise ValueError(
            f"download.data_endpoint {data_endpoint!r} must contain the placeholder {{file_id}}"
        )
    return data_endpoint.replace("{file_id}", file_id)


def md5_of(path: PathLike, chunk_size: int = 8 * _MIB) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


class _Progress:
    """Logs a transfer's progress every `every` bytes (percent when the size is known)."""

    def __init__(self, what: str, total: int | None, start: int, every: int) -> None:
        self.what, self.total, self.every = what, total, max(1, every)
        self.start, self.done, self.reported = start, start, -1
        self.t0 = time.monotonic()
        self.next_at = (start // self.every + 1) * self.every

    def advance(self, n: int) -> None:
        """Count `n` more bytes and log when the next step is reached."""
        self.done += n
        if self.done >= self.next_at:
            self.next_at = (self.done // self.every + 1) * self.every
            self.report()

    def report(self) -> None:
        """Log the bytes so far (once per byte count)."""
        if self.reported == self.done:
            return
        self.reported = self.done
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        rate = (self.done - self.start) / elapsed / _MIB
        if self.total:
            log.info(
                "%s: %.1f/%.1f MiB (%.0f%%), %.1f MiB/s",
                self.what,
                self.done / _MIB,
                self.total / _MIB,
                100.0 * self.done / self.total,
                rate,
            )
        else:
            log.info("%s: %.1f MiB, %.1f MiB/s", self.what, self.done / _MIB, rate)


def _transfer_once(
    http: requests.Session,
    url: str,
    part: Path,
    *,
    size: int | None,
    timeout: float,
    chunk_size: int,
    progress_every: int,
    what: str,
) -> None:
    """One HTTP request: append to `part` from its current length (Range) or restart it."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        log.warning("%s: %s is longer than %d bytes; starting again", what, part, size)
        part.unlink()
        offset = 0
    if size is not None and offset == size:
        return  # complete from an earlier attempt: only verification is left
    # identity: byte offsets of a Range must be those of the file, not of a compressed stream
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with http.get(url, headers=headers, stream=True, timeout=timeout) as response:
        status = response.status_code
        if status == 416:
            # nothing to send from `offset`: the server's file is shorter than our .part
            if size is None and _range_total(response) == str(offset):
                return  # the .part already holds the whole file
            part.unlink(missing_ok=True)
            raise _Transient(f"HTTP 416 for Range bytes={offset}-; restarting from byte 0")
        _check_status(response, what)
        if status == 206:
            first = _range_start(response)
            if first != offset:
                part.unlink(missing_ok=True)
                raise _Transient(
                    f"server sent bytes from {first} for Range bytes={offset}-; restarting"
                )
            mode = "ab"
        elif status == 200:
            if offset:
                log.info(
                    "%s: server ignored the Range request (HTTP 200); restarting from byte 0",
                    what,
                )
                offset = 0
            mode = "wb"
        else:
            raise DownloadError(f"{what}: unexpected HTTP {status} {response.reason} from {url}")
        if offset:
            log.info("%s: resuming at byte %d", what, offset)
        progress = _Progress(what, size, offset, progress_every)
        with open(part, mode) as fh:
            for block in response.iter_content(chunk_size=chunk_size):
                fh.write(block)
                progress.advance(len(block))
            fh.flush()
            os.fsync(fh.fileno())
        progress.report()
    got = part.stat().st_size
    if size is not None and got < size:
        raise _Transient(f"connection closed after {got} of {size} bytes")


def _range_start(response: requests.Response) -> int | None:
    """First byte of a 206 answer from its Content-Range header (None if absent/unparsable)."""
    m = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", "").strip())
    return int(m.group(1)) if m else None


def _range_total(response: requests.Response) -> str:
    """Total length from a 416 answer's `Content-Range: bytes */N` header ('*' if unknown)."""
    value = response.headers.get("Content-Range", "").strip()
    return value.rsplit("/", 1)[-1] if "/" in value else "*"


def download_file(
    url: str,
    dest: PathLike,
    *,
    md5: str | None = None,
    size: int | None = None,
    retries: int = 5,
    backoff: float = 2.0,
    max_backoff: float = 120.0,
    timeout: float = 60.0,
    chunk_size: int = _MIB,
    progress_every: int = 256 * _MIB,
    verify_existing: bool = False,
    label: str | None = None,
    session: requests.Session | None = None,
) -> Path:
    """Download `url` to `dest` via `dest.part`, resuming with HTTP Range, then verify and rename.

    Connection errors, timeouts, HTTP 5xx and 429 are retried `retries` times with exponential
    back-off (`backoff`, doubling, at most `max_backoff` seconds); an attempt that advanced the
    `.part` file does not count. Other 4xx answers fail at once. A server answering 200 to a Range
    request restarts the file; 416 drops the `.part`. After the transfer the size and md5 are
    checked: on a mismatch the `.part` is deleted and ChecksumError names `label`. Only a verified
    file is renamed to `dest`. An existing `dest` of the expected size is kept (and md5-checked
    when `verify_existing`); a wrong one is removed and downloaded again.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    what = label or dest.name
    md5 = md5.lower() if md5 else None
    if md5 is not None and not _MD5_RE.match(md5):
        raise ValueError(f"{what}: expected md5 {md5!r} is not 32 hex digits")
    if dest.exists():
        have = dest.stat().st_size
        if size is None or have == size:
            if not (verify_existing and md5):
                log.info("%s: %s already present (%d bytes); kept", what, dest, have)
                return dest
            if md5_of(dest) == md5:
                log.info("%s: %s already present, md5 verified; kept", what, dest)
                return dest
            log.warning("%s: existing %s has a wrong md5; downloading again", what, dest)
        else:
            log.warning(
                "%s: existing %s has %d bytes, expected %d; downloading again",
                what,
                dest,
                have,
                size,
            )
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    http = _session(session)
    log.info(
        "%s: downloading %s -> %s (%s bytes)", what, url, dest, size if size is not None else "?"
    )
    sizes = {"last": part.stat().st_size if part.exists() else 0}

    def _grew() -> bool:
        now = part.stat().st_size if part.exists() else 0
        grew, sizes["last"] = now > sizes["last"], now
        return grew

    t0 = time.monotonic()
    _with_retries(
        lambda: _transfer_once(
            http,
            url,
            part,
            size=size,
            timeout=timeout,
            chunk_size=chunk_size,
            progress_every=progress_every,
            what=what,
        ),
        what=what,
        retries=retries,
        backoff=backoff,
        max_backoff=max_backoff,
        made_progress=_grew,
    )
    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise ChecksumError(
            f"{what}: downloaded {got} bytes, the manifest says {size}; deleted {part}"
        )
    if md5:
        actual = md5_of(part)
        if actual != md5:
            part.unlink()
            raise ChecksumError(
                f"{what}: md5 {actual} does not match the manifest's {md5}; deleted {part}"
            )
    os.replace(part, dest)
    log.info(
        "%s: done, %d bytes%s in %.1f s",
        what,
        got,
        ", md5 verified" if md5 else "",
        time.monotonic() - t0,
    )
    return dest


# --------------------------------------------------------------------------------------------
# config-driven stages (called by the Snakemake scripts and the CLI)
# --------------------------------------------------------------------------------------------

DOWNLOAD_DEFAULTS: dict[str, Any] = {
    "files_endpoint": DEFAULT_FILES_ENDPOINT,
    "data_endpoint": DEFAULT_DATA_ENDPOINT,
    "page_size": 500,
    "timeout": 60.0,
    "retries": 5,
    "backoff": 2.0,
    "max_backoff": 120.0,
    "chunk_kb": 1024,
    "progress_mb": 256,
    "verify_existing": False,
}


def _settings(download: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `download` config block over DOWNLOAD_DEFAULTS."""
    return {**DOWNLOAD_DEFAULTS, **(download or {})}


def cohort_projects(cohort: str, download: Mapping[str, Any] | None) -> list[str]:
    """GDC project ids of a cohort: `download.projects[cohort]`, else the cohort name itself."""
    projects = (download or {}).get("projects", {}).get(cohort, [cohort])
    if isinstance(projects, str):
        projects = [projects]
    return list(projects)


def _query_settings(download: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments of the files-endpoint queries from the `download` config block."""
    s = _settings(download)
    return {
        "files_endpoint": s["files_endpoint"],
        "page_size": int(s["page_size"]),
        "timeout": float(s["timeout"]),
        "retries": int(s["retries"]),
        "backoff": float(s["backoff"]),
        "max_backoff": float(s["max_backoff"]),
    }


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
        **_query_settings(download),
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
    s = _settings(download)
    label = f"slide {slide_id} (GDC file {file_id})" if slide_id else f"GDC file {file_id}"
    return download_file(
        data_url(s["data_endpoint"], file_id),
        dest,
        md5=md5,
        size=size,
        retries=int(s["retries"]),
        backoff=float(s["backoff"]),
        max_backoff=float(s["max_backoff"]),
        timeout=float(s["timeout"]),
        chunk_size=int(s["chunk_kb"]) * 1024,
        progress_every=int(float(s["progress_mb"]) * _MIB),
        verify_existing=bool(s["verify_existing"]),
        label=label,
        session=session,
    )


# --------------------------------------------------------------------------------------------
# omics files: STAR counts and gene-level copy number (acquisition.omics.source: gdc)
# --------------------------------------------------------------------------------------------

OMICS_MODALITIES: tuple[str, ...] = ("rnaseq", "cnv")
"""Modalities listed and downloaded from the GDC; the parsers are in mmsurv.acquire.tcga."""

OMICS_DEFAULTS: dict[str, Any] = {
    "dir": "data/tcga/omics",
    "access": "open",
    "rnaseq": {
        "data_category": "Transcriptome Profiling",
        "data_type": "Gene Expression Quantification",
        "workflow_type": "STAR - Counts",
        "value": "tpm_unstranded",
    },
    "cnv": {
        "data_category": "Copy Number Variation",
        "data_type": "Gene Level Copy Number",
        "workflow_type": "ASCAT3",
        "value": "copy_number",
    },
}
"""The `acquisition.omics.gdc` config block's defaults (filter values and the value column)."""

OMICS_MANIFEST_COLUMNS = [
    "cohort",
    "project_id",
    "modality",
    "case_id",
    "sample_id",
    "aliquot_id",
    "file_id",
    "file_name",
    "file_size",
    "md5sum",
]
"""One row per GDC omics file; `sample_id`/`aliquot_id` are TCGA barcodes (aliquot may be empty)."""

OMICS_FILE_TABLE_COLUMNS = [*OMICS_MANIFEST_COLUMNS, "path"]
"""The downloaded-files table of one cohort and modality: manifest rows plus the local path."""

OMICS_FIELDS = [
    "file_id",
    "file_name",
    "file_size",
    "md5sum",
    "data_category",
    "data_type",
    "analysis.workflow_type",
    "access",
    "cases.submitter_id",
    "cases.project.project_id",
    "cases.samples.submitter_id",
    "cases.samples.portions.analytes.aliquots.submitter_id",
]
"""Fields requested for omics files (GDC field names; nested samples are those of the file)."""


def omics_settings(gdc_omics: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `acquisition.omics.gdc` block over OMICS_DEFAULTS (per-modality keys merged too)."""
    given = dict(gdc_omics or {})
    unknown = [k for k in given if k not in OMICS_DEFAULTS]
    if unknown:
        raise ValueError(
            f"acquisition.omics.gdc: unknown key(s) {unknown}; known: {sorted(OMICS_DEFAULTS)}"
        )
    out = {**OMICS_DEFAULTS, **given}
    for modality in OMICS_MODALITIES:
        out[modality] = {**OMICS_DEFAULTS[modality], **(given.get(modality) or {})}
    return out


def omics_filters(
    project_ids: Sequence[str],
    *,
    data_category: str,
    data_type: str,
    workflow_type: str,
    access: str = "open",
) -> dict[str, Any]:
    """GDC filter JSON: one modality's per-sample files (category, type, workflow) of projects."""

    return _all_of(
        [
            _in("cases.project.project_id", project_ids),
            _in("files.data_category", [data_category]),
            _in("files.data_type", [data_type]),
            _in("files.analysis.workflow_type", [workflow_type]),
            _in("files.access", [access]),
        ]
    )


def _sample_type(barcode: str) -> int:
    """The 2-digit sample-type code of a TCGA sample barcode (01 tumour ... 10-19 normal)."""
    from mmsurv.acquire.tcga import parse_sample_barcode

    return int(parse_sample_barcode(barcode)[1])


def _omics_hit_to_row(
    hit: Mapping[str, Any], project_ids: Sequence[str], modality: str
) -> dict[str, Any]:
    """One omics file hit as a manifest row: its case, its (tumour) sample and aliquot barcodes.

    A gene-level copy-number file is linked to the tumour and the matched normal sample; the
    tumour (type code < 10) is the file's sample. Errors name the file and its samples.
    """
    row, case = _checked_file(hit, project_ids)
    where = f"GDC {modality} file {row['file_id']} ({row['file_name']}, case {row['case_id']})"
    samples = [s for s in case.get("samples") or [] if s.get("submitter_id")]
    if not samples:
        raise ManifestError(f"{where}: hit has no `cases.samples.submitter_id`")
    barcodes = [str(s["submitter_id"]) for s in samples]
    try:
        codes = [_sample_type(b) for b in barcodes]
    except ValueError as err:
        raise ManifestError(f"{where}: {err}") from err
    foreign = [b for b in barcodes if not b.startswith(row["case_id"] + "-")]
    if foreign:
        raise ManifestError(f"{where}: sample(s) {foreign} are not of case {row['case_id']}")
    if len(samples) > 1:
        samples = [s for s, code in zip(samples, codes, strict=True) if code < 10]
        if len(samples) != 1:
            raise ManifestError(
                f"{where}: linked to samples {barcodes}; expected exactly one tumour sample "
                "(type code 01-09)"
            )
    sample = samples[0]
    aliquots = [
        str(a["submitter_id"])
        for portion in sample.get("portions") or []
        for analyte in portion.get("analytes") or []
        for a in analyte.get("aliquots") or []
        if a.get("submitter_id")
    ]
    return {
        **row,
        "modality": modality,
        "sample_id": str(sample["submitter_id"]),
        "aliquot_id": aliquots[0] if len(set(aliquots)) == 1 else "",
    }


def _barcode_key(manifest: pd.DataFrame) -> pd.Series:
    """The barcode that keys each file for `choose_samples`: the aliquot, else the sample."""
    aliquot = manifest["aliquot_id"].fillna("").astype(str)
    return aliquot.where(aliquot != "", manifest["sample_id"].astype(str))


def _drop_repeated_barcodes(manifest: pd.DataFrame, what: str) -> pd.DataFrame:
    """Keep one file per (modality, barcode): the smallest file id, the others logged."""
    keyed = manifest.assign(barcode=_barcode_key(manifest)).sort_values(
        ["modality", "barcode", "file_id"]
    )
    repeated = keyed.duplicated(["modality", "barcode"], keep="first")
    for modality, barcode in sorted(
        set(zip(keyed.loc[repeated, "modality"], keyed.loc[repeated, "barcode"], strict=True))
    ):
        same = keyed[(keyed["modality"] == modality) & (keyed["barcode"] == barcode)]
        log.warning(
            "%s: %s %s has several files %s; using %s",
            what,
            modality,
            barcode,
            list(same["file_id"]),
            same["file_id"].iloc[0],
        )
    return keyed[~repeated].drop(columns="barcode")


def query_omics_manifest(
    project_ids: Sequence[str],
    *,
    cohort: str,
    omics: Mapping[str, Any] | None = None,
    modalities: Sequence[str] = OMICS_MODALITIES,
    files_endpoint: str = DEFAULT_FILES_ENDPOINT,
    page_size: int = 500,
    timeout: float = 60.0,
    retries: int = 5,
    backoff: float = 2.0,
    max_backoff: float = 120.0,
    session: requests.Session | None = None,
) -> pd.DataFrame:
    """List the per-sample omics files of projects (OMICS_MANIFEST_COLUMNS), one query each.

    `omics` is the `acquisition.omics.gdc` block (filter values per modality, `access`). Every
    project needs at least one file per modality (a misspelt project or workflow type fails here).
    Rows are sorted by modality, case and sample barcode.
    """
    project_ids = list(project_ids)
    if not project_ids:
        raise ValueError("query_omics_manifest needs at least one project id")
    s = omics_settings(omics)
    frames = []
    for modality in modalities:
        if modality not in OMICS_MODALITIES:
            raise ValueError(f"unknown GDC omics modality {modality!r}; known: {OMICS_MODALITIES}")
        m = s[modality]
        what = (
            f"GDC {modality} listing of {', '.join(project_ids)} ({m['data_type']}, "
            f"{m['workflow_type']}; {files_endpoint})"
        )
        filters = omics_filters(
            project_ids,
            data_category=m["data_category"],
            data_type=m["data_type"],
            workflow_type=m["workflow_type"],
            access=s["access"],
        )
        hits = _query_hits(
            filters,
            OMICS_FIELDS,
            what=what,
            files_endpoint=files_endpoint,
            page_size=page_size,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            session=session,
        )
        rows = [_omics_hit_to_row(h, project_ids, modality) for h in hits]
        frame = pd.DataFrame(rows, columns=[c for c in OMICS_MANIFEST_COLUMNS if c != "cohort"])
        missing = [p for p in project_ids if p not in set(frame["project_id"])]
        if missing:
            raise ManifestError(
                f"{what}: no {s['access']} file for project(s) {missing}; check the project ids "
                f"and acquisition.omics.gdc.{modality} (data_category, data_type, workflow_type)"
            )
        frames.append(_drop_repeated_barcodes(frame, what))
    manifest = pd.concat(frames, ignore_index=True)
    manifest.insert(0, "cohort", cohort)
    _check_omics_manifest(manifest, f"GDC omics listing of {cohort}")
    return manifest.sort_values(["modality", "case_id", "sample_id", "file_id"]).reset_index(
        drop=True
    )


def _check_omics_manifest(manifest: pd.DataFrame, source: str) -> None:
    """A file listed twice, or an unknown modality, makes the manifest ambiguous: refuse it."""
    dup = manifest.loc[manifest["file_id"].duplicated(keep=False), "file_id"].unique()
    if len(dup):
        raise ManifestError(f"{source}: duplicated file_id(s) {sorted(dup)[:10]}")
    bad = sorted(set(manifest["modality"]) - set(OMICS_MODALITIES))
    if bad:
        raise ManifestError(f"{source}: unknown modality value(s) {bad}")


def write_omics_manifest(manifest: pd.DataFrame, path: PathLike) -> None:
    """Write an omics manifest TSV atomically."""
    with atomic_path(path) as tmp:
        manifest[OMICS_MANIFEST_COLUMNS].to_csv(tmp, sep="\t", index=False)


def read_omics_manifest(
    path: PathLike, columns: Sequence[str] = OMICS_MANIFEST_COLUMNS
) -> pd.DataFrame:
    """Read an omics manifest (or downloaded-files table) TSV, checking its columns."""
    if not Path(path).is_file():
        raise ManifestError(f"omics manifest {path} does not exist")
    dtypes = {c: str for c in columns if c != "file_size"}
    manifest = pd.read_csv(path, sep="\t", dtype=dtypes, keep_default_na=False, na_values=[""])
    missing = [c for c in columns if c not in manifest.columns]
    if missing:
        raise ManifestError(f"omics manifest {path} lacks column(s) {missing}")
    _check_omics_manifest(manifest, f"omics manifest {path}")
    return manifest


def write_cohort_omics_manifest(
    cohort: str,
    out: PathLike,
    *,
    download: Mapping[str, Any] | None = None,
    omics: Mapping[str, Any] | None = None,
    project_ids: Sequence[str] | None = None,
    session: requests.Session | None = None,
) -> pd.DataFrame:
    """Query a cohort's omics files with the `download` and `acquisition.omics.gdc` blocks."""
    projects = list(project_ids) if project_ids else cohort_projects(cohort, download)
    manifest = query_omics_manifest(
        projects,
        cohort=cohort,
        omics=omics,
        session=session,
        **_query_settings(download),
    )
    write_omics_manifest(manifest, out)
    for modality, part in manifest.groupby("modality"):
        log.info(
            "%s %s: %d files of %d cases, %.1f MiB -> %s",
            cohort,
            modality,
            len(part),
            part["case_id"].nunique(),
            part["file_size"].sum() / _MIB,
            out,
        )
    return manifest


def fetch_omics_files(
    manifest: PathLike,
    modality: str,
    out: PathLike,
    *,
    omics_dir: PathLike,
    download: Mapping[str, Any] | None = None,
    session: requests.Session | None = None,
) -> pd.DataFrame:
    """Download one modality's files of an omics manifest and write the downloaded-files table.

    Files land in `{omics_dir}/{file_id}/{file_name}` (gdc-client layout) through
    `download_file`: resumed, retried, size- and md5-checked. A file already there is md5-checked
    and kept when it matches (these files are small). Every file is tried; failures are raised
    together at the end, naming each file, and the table is written only when all succeeded.
    """
    if modality not in OMICS_MODALITIES:
        raise ValueError(f"unknown GDC omics modality {modality!r}; known: {OMICS_MODALITIES}")
    s = _settings(download)
    rows = read_omics_manifest(manifest)
    rows = rows[rows["modality"] == modality].reset_index(drop=True)
    if rows.empty:
        raise ManifestError(f"omics manifest {manifest}: no {modality} file")
    http = _session(session)
    paths, failed = [], []
    for row in rows.itertuples(index=False):
        dest = slide_path(omics_dir, row.file_id, row.file_name)
        label = f"{modality} of {row.sample_id} (GDC file {row.file_id})"
        try:
            download_file(
                data_url(s["data_endpoint"], row.file_id),
                dest,
                md5=row.md5sum,
                size=int(row.file_size),
                retries=int(s["retries"]),
                backoff=float(s["backoff"]),
                max_backoff=float(s["max_backoff"]),
                timeout=float(s["timeout"]),
                chunk_size=int(s["chunk_kb"]) * 1024,
                progress_every=int(float(s["progress_mb"]) * _MIB),
                verify_existing=True,
                label=label,
                session=http,
            )
        except DownloadError as err:
            log.error("%s", err)
            failed.append(str(err))
        paths.append(dest)
    if failed:
        raise DownloadError(
            f"{len(failed)} of {len(rows)} {modality} file(s) of {manifest} failed: "
            + "; ".join(failed[:10])
        )
    table = rows.assign(path=paths)[OMICS_FILE_TABLE_COLUMNS]
    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    log.info("%s: %d %s files in %s, listed in %s", manifest, len(table), modality, omics_dir, out)
    return table


def read_omics_file_table(path: PathLike, modality: str) -> dict[str, str]:
    """{barcode: local path} of a downloaded-files table, for the mmsurv.acquire.tcga GDC parsers.

    The barcode is the aliquot's where the GDC gave one, else the sample's; both start with the
    case barcode, so `choose_samples` keeps one file per case by sample type.
    """
    table = read_omics_manifest(path, OMICS_FILE_TABLE_COLUMNS)
    other = sorted(set(table["modality"]) - {modality})
    if other:
        raise ManifestError(f"omics file table {path}: expected only {modality!r}, got {other}")
    if table.empty:
        raise ManifestError(f"omics file table {path}: no {modality} file")
    keys = _barcode_key(table)
    dup = sorted(set(keys[keys.duplicated()]))
    if dup:
        raise ManifestError(f"omics file table {path}: barcode(s) {dup[:10]} have several files")
    return dict(zip(keys, table["path"].astype(str), strict=True))


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _add_http_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by the subcommands that talk to the GDC."""
    d = DOWNLOAD_DEFAULTS
    parser.add_argument("--timeout", type=float, default=d["timeout"], help="seconds per request")
    parser.add_argument("--retries", type=int, default=d["retries"], help="retries per request")
    parser.add_argument(
        "--backoff", type=float, default=d["backoff"], help="first back-off (s), doubles"
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: `manifest` lists a cohort's slides, `sheet` joins manifests, `download`."""
    parser = argparse.ArgumentParser(prog="python -m mmsurv.acquire.gdc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_man = sub.add_parser("manifest", help="list the open diagnostic slides of GDC projects")
    p_man.add_argument(
        "--project", action="append", required=True, help="GDC project id (repeatable)"
    )
    p_man.add_argument("--cohort", help="cohort name of the rows (default: the single project)")
    p_man.add_argument("--out", required=True, help="manifest TSV to write")
    p_man.add_argument("--sheet", help="also write this slide sheet TSV for the workflow")
    p_man.add_argument("--slide-dir", help="download directory used in the sheet's `path`")
    p_man.add_argument("--files-endpoint", default=DEFAULT_FILES_ENDPOINT)
    p_man.add_argument("--page-size", type=int, default=DOWNLOAD_DEFAULTS["page_size"])
    _add_http_args(p_man)

    p_sheet = sub.add_parser("sheet", help="write the slide sheet of one or more manifests")
    p_sheet.add_argument("--manifest", action="append", required=True, help="(repeatable)")
    p_sheet.add_argument("--slide-dir", required=True, help="download directory")
    p_sheet.add_argument("--out", required=True, help="slide sheet TSV to write")

    p_dl = sub.add_parser("download", help="download one GDC file, resumable and verified")
    p_dl.add_argument("--file-id", required=True)
    p_dl.add_argument("--out", required=True, help="destination file")
    p_dl.add_argument("--md5", help="expected md5 (hex)")
    p_dl.add_argument("--size", type=int, help="expected size in bytes")
    p_dl.add_argument("--data-endpoint", default=DEFAULT_DATA_ENDPOINT)
    _add_http_args(p_dl)

    args = parser.parse_args(argv)
    setup_logging(None)
    if args.command == "manifest":
        if args.sheet and not args.slide_dir:
            parser.error("--sheet needs --slide-dir")
        cohort = args.cohort or (args.project[0] if len(args.project) == 1 else None)
        if cohort is None:
            parser.error("several --project values need --cohort")
        manifest = write_cohort_manifest(
            cohort,
            args.out,
            project_ids=args.project,
            download={
                "files_endpoint": args.files_endpoint,
                "page_size": args.page_size,
                "timeout": args.timeout,
                "retries": args.retries,
                "backoff": args.backoff,
            },
        )
        if args.sheet:
            write_slide_sheet(manifest_to_sheet([manifest], args.slide_dir), args.sheet)
    elif args.command == "sheet":
        write_sheet_from_manifests(args.manifest, args.slide_dir, args.out)
    else:
        fetch_slide(
            args.file_id,
            args.out,
            md5=args.md5,
            size=args.size,
            download={
                "data_endpoint": args.data_endpoint,
                "timeout": args.timeout,
                "retries": args.retries,
                "backoff": args.backoff,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
