"""Encoder weights for real runs: downloaded resumably and verified by sha256 before use."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mmsurv.acquire.retry import ChecksumError, redact_url

log = logging.getLogger(__name__)

__all__ = ["expected_sha256", "fetch_weights", "sha256_of"]

# torch.hub's convention: <name>-<first hex digits of the sha256>.<ext>, e.g. resnet50-0676ba61.pth
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.")
_HEX = re.compile(r"^[a-f0-9]{8,64}$")


def expected_sha256(url: str, sha256: str | None) -> str:
    """The configured sha256 (or prefix), else the prefix in the URL's file name (torch.hub)."""
    if sha256:
        want = sha256.strip().lower()
        if not _HEX.match(want):
            raise ValueError(f"features.weights_sha256 {sha256!r} is not 8-64 hex digits")
        return want
    found = HASH_IN_NAME.search(Path(urlparse(url).path).name)
    if found is None:
        raise ValueError(
            f"encoder weights {redact_url(url)}: no features.weights_sha256 configured and no "
            "hash in the file name (torch.hub's <name>-<sha256 prefix>.pth); set "
            "features.weights_sha256"
        )
    return found.group(1)


def sha256_of(path: str | os.PathLike[str], chunk_size: int = 8 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def fetch_weights(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    download: Mapping[str, Any] | None = None,
) -> Path:
    """Download `url` to `dest` (resume + retries as for GDC files) and verify its sha256.

    The file is fetched under `<dest>.download` and only renamed to `dest` once its sha256
    matches, so a wrong or truncated file never sits where the encoder looks for weights. An
    existing `dest` is kept when it matches and is an error (never overwritten) when it does not.
    """
    from mmsurv.acquire.transfer import fetch_source

    dest = Path(dest)
    want = expected_sha256(url, sha256)
    label = f"encoder weights {dest.name} ({redact_url(url)})"
    if dest.exists():
        got = sha256_of(dest)
        if got.startswith(want):
            log.info("%s: %s already present, sha256 verified; kept", label, dest)
            return dest
        raise ChecksumError(
            f"{label}: existing {dest} has sha256 {got[:16]}..., expected {want}; it is left "
            "in place: remove it to download again"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(dest.name + ".download")
    fetch_source(url, staging, md5=None, label=label, download=download, checked_after=True)
    got = sha256_of(staging)
    if not got.startswith(want):
        staging.unlink()
        raise ChecksumError(
            f"{label}: downloaded file has sha256 {got[:16]}..., expected {want}; removed"
        )
    os.replace(staging, dest)
    log.info("%s: sha256 %s verified; written to %s", label, got[:16], dest)
    return dest
