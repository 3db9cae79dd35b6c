"""Resumable, retried, md5-checked HTTP downloads shared by every acquisition source."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

DEFAULT_FILES_ENDPOINT = "https://api.gdc.cancer.gov/files"
DEFAULT_DATA_ENDPOINT = "https://api.gdc.cancer.gov/data/{file_id}"
USER_AGENT = "mmsurv-workflow (python-requests)"
MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_CONTENT_RANGE_RE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
MIB = 1 << 20


class GDCError(RuntimeError):
    """A GDC request or download that failed; the message names the project, file or slide."""


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


def http_session(session: requests.Session | None) -> requests.Session:
    """The given session, or a new one with this package's User-Agent."""
    if session is not None:
        return session
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    return s


def post_json(
    http: requests.Session,
    url: str,
    payload: Mapping[str, Any],
    *,
    what: str,
    timeout: float,
    retries: int,
    backoff: float,
    max_backoff: float,
) -> Any:
    """POST `payload` as JSON and return the decoded answer, retried like a download.

    A 4xx answer other than 429 is a DownloadError at once; an answer that is not JSON is retried.
    """

    def _post() -> Any:
        response = http.post(url, json=payload, timeout=timeout)
        _check_status(response, what)
        try:
            return response.json()
        except ValueError as err:
            raise _Transient(f"response is not JSON: {response.text[:200]!r}") from err

    return _with_retries(
        _post, what=what, retries=retries, backoff=backoff, max_backoff=max_backoff
    )


# --------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------


def md5_of(path: PathLike, chunk_size: int = 8 * MIB) -> str:
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
        rate = (self.done - self.start) / elapsed / MIB
        if self.total:
            log.info(
                "%s: %.1f/%.1f MiB (%.0f%%), %.1f MiB/s",
                self.what,
                self.done / MIB,
                self.total / MIB,
                100.0 * self.done / self.total,
                rate,
            )
        else:
            log.info("%s: %.1f MiB, %.1f MiB/s", self.what, self.done / MIB, rate)


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


def _keep_existing(
    dest: Path, *, size: int | None, md5: str | None, verify_existing: bool, what: str
) -> bool:
    """True when an existing `dest` is kept; a wrong one is deleted so it is downloaded again."""
    if not dest.exists():
        return False
    have = dest.stat().st_size
    if size is None or have == size:
        if not (verify_existing and md5):
            log.info("%s: %s already present (%d bytes); kept", what, dest, have)
            return True
        if md5_of(dest) == md5:
            log.info("%s: %s already present, md5 verified; kept", what, dest)
            return True
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
    return False


def _verify_part(part: Path, *, size: int | None, md5: str | None, what: str) -> int:
    """The size of a finished `.part`; on a size or md5 mismatch it is deleted (ChecksumError)."""
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
    return got


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
    chunk_size: int = MIB,
    progress_every: int = 256 * MIB,
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
    if md5 is not None and not MD5_RE.match(md5):
        raise ValueError(f"{what}: expected md5 {md5!r} is not 32 hex digits")
    if _keep_existing(dest, size=size, md5=md5, verify_existing=verify_existing, what=what):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    http = http_session(session)
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
    got = _verify_part(part, size=size, md5=md5, what=what)
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
# the `download` config block
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


def download_settings(download: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `download` config block over DOWNLOAD_DEFAULTS."""
    return {**DOWNLOAD_DEFAULTS, **(download or {})}


def transfer_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The `download_file` keyword arguments (retries, timeouts, chunks) of merged settings."""
    s = settings
    return {
        "retries": int(s["retries"]),
        "backoff": float(s["backoff"]),
        "max_backoff": float(s["max_backoff"]),
        "timeout": float(s["timeout"]),
        "chunk_size": int(s["chunk_kb"]) * 1024,
        "progress_every": int(float(s["progress_mb"]) * MIB),
    }


def fetch_source(
    url: str,
    dest: PathLike,
    *,
    md5: str | None,
    label: str,
    download: Mapping[str, Any] | None = None,
    checked_after: bool = False,
) -> Path:
    """Download one omics/survival source with the `download` settings (resume, retries, md5).

    `checked_after`: the caller verifies the file itself (e.g. a sha256), so a missing md5 is
    not worth a warning.
    """
    s = download_settings(download)
    if not md5 and not checked_after:
        log.warning(
            "%s: no md5 configured; the download is resumed and retried but not checksum-verified",
            label,
        )
    return download_file(
        url,
        dest,
        md5=md5 or None,
        **transfer_options(s),
        verify_existing=bool(s["verify_existing"]),
        label=label,
    )
