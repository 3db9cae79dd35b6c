"""HTTP with retries for every acquisition source: error types, back-off, redacted URLs.

Transient failures (connection errors, timeouts, HTTP 5xx and 429) are retried with exponential
back-off; other 4xx answers fail at once. URLs are logged and raised only through `redact_url`,
and error texts through `scrub`: a signed URL's query string or a `user:password@` would
otherwise land in job logs and tracebacks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

log = logging.getLogger(__name__)

USER_AGENT = "mmsurv-workflow (python-requests)"


class GDCError(RuntimeError):
    """A GDC request or download that failed; the message names the project, file or slide."""


class DownloadError(GDCError):
    """A file that could not be downloaded (after the configured retries, or a 4xx answer)."""


class ChecksumError(DownloadError):
    """A downloaded file whose size or md5 differs from the manifest; it was deleted."""


class TransientError(Exception):
    """One failed attempt that is worth retrying (connection error, timeout, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --------------------------------------------------------------------------------------------
# secrets in URLs
# --------------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """`url` without its user:password@, query string and fragment, for logs and messages."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # unparsable (e.g. a bad port): keep only what precedes any secret
        return str(url).split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    query = "?<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, host + port, parts.path, "", "")) + query


def _secrets(url: str | None) -> list[str]:
    """The parts of `url` that must not be shown: userinfo, query, fragment and their values."""
    if not url:
        return []
    url = str(url)
    rest, _, fragment = url.partition("#")
    rest, _, query = rest.partition("?")
    netloc = rest.partition("//")[2].split("/", 1)[0]  # split by hand: works on a broken URL too
    userinfo = netloc.rpartition("@")[0]
    found = [query, fragment, userinfo, userinfo.partition(":")[2]]
    found += [pair.partition("=")[2] for pair in query.split("&")]
    found += [unquote(s) for s in found]
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def scrub(text: str, url: str | None) -> str:
    """`text` with every secret part of `url` (query, userinfo and their values) replaced."""
    for secret in _secrets(url):
        text = text.replace(secret, "<redacted>")
    return text


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


def check_status(response: requests.Response, what: str, url: str | None = None) -> None:
    """Raise TransientError on 5xx/429 (worth retrying) and DownloadError on any other 4xx.

    The URL is shown redacted, and the body (which may echo a signed URL) without its secrets.
    """
    status = response.status_code
    if status == 429 or status >= 500:
        raise TransientError(f"HTTP {status} {response.reason}", _retry_after(response))
    if status >= 400:
        body = scrub(scrub(response.text[:300].strip(), url), response.url)
        raise DownloadError(
            f"{what}: HTTP {status} {response.reason} from {redact_url(response.url)} "
            f"(not retried): {body}"
        )


_RETRIED = (
    requests.ConnectionError,  # refused, reset, DNS, read timeouts while streaming
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,  # connection closed before Content-Length bytes
    TransientError,
)


def with_retries(
    attempt: Callable[[], Any],
    *,
    what: str,
    retries: int,
    backoff: float,
    max_backoff: float,
    made_progress: Callable[[], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    url: str | None = None,
) -> Any:
    """Call `attempt` until it succeeds; transient failures are retried with exponential back-off.

    An attempt after which `made_progress()` is true (a download that grew its `.part` file) does
    not count against `retries`, so a long transfer over a flaky link is not abandoned while it
    advances; the count restarts from zero (the download's byte and restart budget bounds that).
    Errors are logged and raised without the secrets of `url`.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    failures = 0
    while True:
        try:
            return attempt()
        except _RETRIED as err:
            raw = str(err) if isinstance(err, TransientError) else f"{type(err).__name__}: {err}"
            reason = scrub(raw, url)
            if made_progress is not None and made_progress():
                failures = 0
                log.warning("%s: transfer interrupted (%s); resuming", what, reason)
                continue
            failures += 1
            if failures > retries:
                raise DownloadError(
                    f"{what}: giving up after {failures} failed attempt(s) "
                    f"(download.retries={retries}); last error: {reason}"
                ) from (err if reason == raw else None)  # the cause would show the secrets
            delay = min(backoff * 2 ** (failures - 1), max_backoff)
            if isinstance(err, TransientError) and err.retry_after is not None:
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
        except requests.RequestException as err:  # a bad URL, too many redirects: not retried
            raw = f"{type(err).__name__}: {err}"
            reason = scrub(raw, url)
            raise DownloadError(f"{what}: {reason} (not retried)") from (
                err if reason == raw else None
            )


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
        check_status(response, what, url)
        try:
            return response.json()
        except ValueError as err:
            raise TransientError(f"response is not JSON: {response.text[:200]!r}") from err

    return with_retries(
        _post, what=what, retries=retries, backoff=backoff, max_backoff=max_backoff, url=url
    )
