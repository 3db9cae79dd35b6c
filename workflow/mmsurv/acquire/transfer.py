"""Resumable, retried, md5-checked HTTP downloads shared by every acquisition source.

A download is bounded in attempts (`retries`), restarts from byte 0 and bytes received, a
server whose file length differs from the expected size is an error, and a file without a
checksum is checked by its type (`mmsurv.acquire.filecheck`) before it is kept. URLs are logged
without their secrets (`mmsurv.acquire.retry.redact_url`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from mmsurv.acquire.filecheck import FileCheckError, check_file, file_kind
from mmsurv.acquire.retry import (
    ChecksumError,
    DownloadError,
    TransientError,
    check_status,
    http_session,
    redact_url,
    with_retries,
)

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

DEFAULT_FILES_ENDPOINT = "https://api.gdc.cancer.gov/files"
DEFAULT_DATA_ENDPOINT = "https://api.gdc.cancer.gov/data/{file_id}"
MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_CONTENT_RANGE_RE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
MIB = 1 << 20


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


class _Budget:
    """What one download may spend across its attempts: restarts from byte 0, and bytes.

    A resume never re-sends a byte, so only restarts (a dropped `.part`) repeat a transfer. They
    are capped at `max_restarts`, and all bytes received at `max_bytes_factor` times the expected
    size, so a download that cannot complete fails instead of looping (an attempt that grew the
    `.part` does not count against `retries`). The expected size is the manifest's, else the
    length the server announced (Content-Length, or the total of a Content-Range).
    """

    def __init__(
        self, what: str, size: int | None, *, max_restarts: int, max_bytes_factor: float
    ) -> None:
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {max_restarts}")
        if max_bytes_factor < 1:
            raise ValueError(f"max_bytes_factor must be >= 1, got {max_bytes_factor}")
        self.what, self.size, self.announced = what, size, None
        self.max_restarts, self.factor = max_restarts, max_bytes_factor
        self.received = self.restarts = 0

    @property
    def expected(self) -> int | None:
        """The manifest's size, else the length the server announced (None if neither)."""
        return self.size if self.size is not None else self.announced

    @property
    def source(self) -> str:
        """Who says the expected size, for messages."""
        return "the manifest" if self.size is not None else "the server's first answer"

    def restart(self) -> None:
        """Count a transfer written from byte 0 after bytes were received; fail past the cap."""
        if self.received == 0:
            return
        self.restarts += 1
        if self.restarts > self.max_restarts:
            raise DownloadError(
                f"{self.what}: giving up: the download restarted from byte 0 more than "
                f"{self.max_restarts} time(s) ({self.received} bytes received in all, expected "
                f"size {self.expected if self.expected is not None else 'unknown'})"
            )

    def add(self, n: int) -> None:
        """Count `n` received bytes; DownloadError when they exceed the byte budget."""
        self.received += n
        expected = self.expected
        if expected is not None and self.received > self.factor * max(expected, 1):
            raise DownloadError(
                f"{self.what}: giving up after receiving {self.received} bytes in all, more than "
                f"{self.factor:g} x the expected {expected} bytes"
            )


def _announced_total(response: requests.Response) -> int | None:
    """The whole file's length the server states: a 206's Content-Range total, a 200's length."""
    if response.status_code == 206:
        m = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", "").strip())
        return int(m.group(3)) if m and m.group(3) != "*" else None
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    length = response.headers.get("Content-Length", "").strip()
    return int(length) if encoding in ("", "identity") and length.isdigit() else None


def _check_announced(response: requests.Response, part: Path, budget: _Budget) -> None:
    """Learn the server's file length; one that differs from the expected size is an error."""
    total = _announced_total(response)
    if total is None:
        return
    expected = budget.expected
    if expected is not None and total != expected:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{budget.what}: size mismatch: the server's file has {total} bytes, "
            f"{budget.source} says {expected} (stale manifest?); nothing kept"
        )
    budget.announced = total


def _on_416(response: requests.Response, part: Path, offset: int, budget: _Budget) -> None:
    """A 416 to `Range: bytes=offset-`: done (the .part is the file), a size error, or a restart."""
    total = _range_total(response)
    n = int(total) if total.isdigit() else None
    expected = budget.expected
    if n is not None and expected is not None and n != expected:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{budget.what}: size mismatch: received {offset} bytes and the server has no more "
            f"(HTTP 416, its file has {n} bytes); {budget.source} says {expected}; deleted {part}"
        )
    if n is not None and n == offset:
        budget.announced = n if budget.size is None else None
        return  # the .part already holds the whole file
    part.unlink(missing_ok=True)
    raise TransientError(f"HTTP 416 for Range bytes={offset}-; restarting from byte 0")


def _write_body(
    response: requests.Response,
    part: Path,
    *,
    mode: str,
    offset: int,
    budget: _Budget,
    chunk_size: int,
    progress_every: int,
) -> None:
    """Stream the answer into `part`; never past the manifest's size (ChecksumError)."""
    progress = _Progress(budget.what, budget.expected, offset, progress_every)
    written, too_long = offset, False
    with open(part, mode) as fh:
        for block in response.iter_content(chunk_size=chunk_size):
            budget.add(len(block))
            written += len(block)
            if budget.size is not None and written > budget.size:
                too_long = True
                break
            fh.write(block)
            progress.advance(len(block))
        fh.flush()
        os.fsync(fh.fileno())
    if too_long:
        part.unlink()
        raise ChecksumError(
            f"{budget.what}: size mismatch: the server sent more than the {budget.size} bytes "
            f"the manifest says; deleted {part}"
        )
    progress.report()


def _transfer_once(
    http: requests.Session,
    url: str,
    part: Path,
    *,
    budget: _Budget,
    timeout: float,
    chunk_size: int,
    progress_every: int,
) -> None:
    """One HTTP request: append to `part` from its current length (Range) or restart it."""
    what = budget.what
    offset = part.stat().st_size if part.exists() else 0
    expected = budget.expected
    if expected is not None and offset > expected:
        log.warning("%s: %s is longer than %d bytes; starting again", what, part, expected)
        part.unlink()
        offset = 0
    if expected is not None and offset == expected:
        return  # complete from an earlier attempt: only verification is left
    # identity: byte offsets of a Range must be those of the file, not of a compressed stream
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with http.get(url, headers=headers, stream=True, timeout=timeout) as response:
        status = response.status_code
        if status == 416:
            return _on_416(response, part, offset, budget)
        check_status(response, what, url)
        if status == 206:
            first = _range_start(response)
            if first != offset:
                part.unlink(missing_ok=True)
                raise TransientError(
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
            raise DownloadError(
                f"{what}: unexpected HTTP {status} {response.reason} from {redact_url(url)}"
            )
        _check_announced(response, part, budget)
        if mode == "wb":
            budget.restart()
        elif offset:
            log.info("%s: resuming at byte %d", what, offset)
        _write_body(
            response,
            part,
            mode=mode,
            offset=offset,
            budget=budget,
            chunk_size=chunk_size,
            progress_every=progress_every,
        )
    got = part.stat().st_size
    expected = budget.expected
    if expected is not None and got < expected:
        raise TransientError(f"connection closed after {got} of {expected} bytes")


def _range_start(response: requests.Response) -> int | None:
    """First byte of a 206 answer from its Content-Range header (None if absent/unparsable)."""
    m = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", "").strip())
    return int(m.group(1)) if m else None


def _range_total(response: requests.Response) -> str:
    """Total length from a 416 answer's `Content-Range: bytes */N` header ('*' if unknown)."""
    value = response.headers.get("Content-Range", "").strip()
    return value.rsplit("/", 1)[-1] if "/" in value else "*"


def _keep_existing(
    dest: Path,
    *,
    size: int | None,
    md5: str | None,
    verify_existing: bool,
    check_type: bool,
    what: str,
) -> bool:
    """True when an existing `dest` is kept; a wrong one is deleted so it is downloaded again.

    Without a size or md5 to compare, `check_type` reads it as the type its name gives (an
    archive through, a table parsed): a cut file left by an earlier run is not kept.
    """
    if not dest.exists():
        return False
    have = dest.stat().st_size
    if size is not None and have != size:
        log.warning(
            "%s: existing %s has %d bytes, expected %d; downloading again", what, dest, have, size
        )
    elif verify_existing and md5:
        if md5_of(dest) == md5:
            log.info("%s: %s already present, md5 verified; kept", what, dest)
            return True
        log.warning("%s: existing %s has a wrong md5; downloading again", what, dest)
    elif check_type:
        try:
            checked = check_file(dest)
        except FileCheckError as err:
            log.warning(
                "%s: existing %s is damaged (%s); deleted, downloading again", what, dest, err
            )
        else:
            how = f", checked as a {checked}" if checked else ""
            log.info("%s: %s already present (%d bytes%s); kept", what, dest, have, how)
            return True
    else:
        log.info("%s: %s already present (%d bytes); kept", what, dest, have)
        return True
    dest.unlink()
    return False


def _verify_part(
    part: Path, dest: Path, *, budget: _Budget, md5: str | None, check_type: bool
) -> str:
    """What was verified of a finished `.part`; on any mismatch it is deleted (ChecksumError)."""
    what, got, expected = budget.what, part.stat().st_size, budget.expected
    if expected is not None and got != expected:
        part.unlink()
        raise ChecksumError(
            f"{what}: size mismatch: downloaded {got} bytes, {budget.source} says {expected}; "
            f"deleted {part}"
        )
    done = [f"{got} bytes"]
    if md5:
        actual = md5_of(part)
        if actual != md5:
            part.unlink()
            raise ChecksumError(
                f"{what}: md5 {actual} does not match the manifest's {md5}; deleted {part}"
            )
        done.append("md5 verified")
    if check_type:
        try:
            checked = check_file(part, name=dest.name)
        except FileCheckError as err:
            part.unlink()
            raise ChecksumError(
                f"{what}: the downloaded file is damaged or cut short ({err}); deleted {part}"
            ) from err
        if checked:
            done.append(f"checked as a {checked}")
    return ", ".join(done)


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
    check_type: bool = False,
    max_restarts: int = 2,
    max_bytes_factor: float = 4.0,
    label: str | None = None,
    session: requests.Session | None = None,
) -> Path:
    """Download `url` to `dest` via `dest.part`, resuming with HTTP Range, then verify and rename.

    Connection errors, timeouts, HTTP 5xx and 429 are retried `retries` times with exponential
    back-off (`backoff`, doubling, at most `max_backoff` seconds); an attempt that advanced the
    `.part` file does not count. Other 4xx answers fail at once. A server answering 200 to a Range
    request restarts the file; 416 drops the `.part`. A download is bounded: at most
    `max_restarts` restarts from byte 0 and `max_bytes_factor` x the expected size received in
    all. A server whose file length differs from `size` (its Content-Length, a Content-Range total
    or a 416) is a ChecksumError at once. Without `size` the length the server announces is
    enforced. After the transfer the size, the md5 and (`check_type`) the file's type
    (`filecheck.check_file`) are checked: on a mismatch the `.part` is deleted and ChecksumError
    names `label`. Only a verified file is renamed to `dest`. An existing `dest` of the expected
    size is kept (md5-checked when `verify_existing`, type-checked when `check_type`); a wrong one
    is removed and downloaded again. The URL is logged without its secrets (`redact_url`).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    what = label or dest.name
    md5 = md5.lower() if md5 else None
    if md5 is not None and not MD5_RE.match(md5):
        raise ValueError(f"{what}: expected md5 {md5!r} is not 32 hex digits")
    budget = _Budget(what, size, max_restarts=max_restarts, max_bytes_factor=max_bytes_factor)
    if _keep_existing(
        dest,
        size=size,
        md5=md5,
        verify_existing=verify_existing,
        check_type=check_type,
        what=what,
    ):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    http = http_session(session)
    log.info(
        "%s: downloading %s -> %s (%s bytes)",
        what,
        redact_url(url),
        dest,
        size if size is not None else "?",
    )
    sizes = {"last": part.stat().st_size if part.exists() else 0}

    def _grew() -> bool:
        now = part.stat().st_size if part.exists() else 0
        grew, sizes["last"] = now > sizes["last"], now
        return grew

    t0 = time.monotonic()
    with_retries(
        lambda: _transfer_once(
            http,
            url,
            part,
            budget=budget,
            timeout=timeout,
            chunk_size=chunk_size,
            progress_every=progress_every,
        ),
        what=what,
        retries=retries,
        backoff=backoff,
        max_backoff=max_backoff,
        made_progress=_grew,
        url=url,
    )
    verified = _verify_part(part, dest, budget=budget, md5=md5, check_type=check_type)
    os.replace(part, dest)
    log.info("%s: done, %s in %.1f s", what, verified, time.monotonic() - t0)
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

    Without an md5 the file is checked by what it claims to be (`filecheck.check_file`: the
    length the server announces, an archive read through, a table or workbook parsed), after the
    download and when it is already there; a file that fails is deleted. `checked_after`: the
    caller verifies the file itself (e.g. a sha256), so neither the warning nor that check apply.
    """
    s = download_settings(download)
    check_type = not md5 and not checked_after
    if check_type:
        kind = file_kind(dest)
        log.warning(
            "%s: no md5 configured; the download is not checksum-verified, only %s",
            label,
            f"checked as a {kind} file (read through / parsed) and against the server's length"
            if kind
            else "checked against the length the server announces",
        )
    return download_file(
        url,
        dest,
        md5=md5 or None,
        **transfer_options(s),
        verify_existing=bool(s["verify_existing"]),
        check_type=check_type,
        label=label,
    )
