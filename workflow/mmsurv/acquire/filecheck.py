"""Check a downloaded file by what its name says it is, for sources that publish no checksum.

A cut download over a server that sends no Content-Length looks complete to HTTP. These checks
read the file the way its format allows: a compressed tar archive is read member by member and
its compression stream to the end (gzip/bzip2/xz carry an end marker and a CRC), a zip or xlsx
has its central directory and every member's CRC checked and an xlsx is parsed, a TSV/CSV is
parsed and its last line must have as many fields as the header. Other types are not checked.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import logging
import lzma
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO
from xml.etree import ElementTree

import pandas as pd

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
_BLOCK = 1 << 20
_TAR_RECORD = 512


class FileCheckError(ValueError):
    """A file that is not a complete, readable instance of the type its name gives."""


_OPENERS: dict[str, Callable[[Path], IO[bytes]]] = {
    ".gz": lambda p: gzip.open(p, "rb"),
    ".tgz": lambda p: gzip.open(p, "rb"),
    ".bz2": lambda p: bz2.open(p, "rb"),
    ".xz": lambda p: lzma.open(p, "rb"),
}
_READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, tarfile.TarError)


def file_kind(path: PathLike) -> str | None:
    """The checked type of a file from its name ('tar', 'gzip', 'zip', 'xlsx', 'table'), or None."""
    name = Path(path).name.lower()
    for suffix in (".part", ".download"):
        name = name.removesuffix(suffix)
    if name.endswith((".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")):
        return "tar"
    if name.endswith((".gz", ".bz2", ".xz")):
        return "compressed"
    if name.endswith(".xlsx"):
        return "xlsx"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tsv", ".txt", ".csv")):
        return "table"
    return None


def _stream(path: Path, kind_name: str) -> IO[bytes]:
    """The decompressed byte stream of `path` (the file itself when it is not compressed)."""
    suffix = kind_name[kind_name.rfind(".") :]
    return _OPENERS[suffix](path) if suffix in _OPENERS else open(path, "rb")  # noqa: SIM115


def _check_tar(path: Path, name: str) -> str:
    """Read every member of a (compressed) tar through, then the stream to its end marker."""
    n_members = 0
    with _stream(path, name) as raw:
        with tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                n_members += 1
                if member.isfile():
                    src = tar.extractfile(member)
                    while src is not None and src.read(_BLOCK):
                        pass
            end = tar.offset  # where the end-of-archive records start (or the data stops)
        while raw.read(_BLOCK):  # gzip/bz2/xz check their CRC and end marker here
            pass
        total = raw.tell()  # bytes of the tar stream (decompressed)
    if n_members == 0:
        raise FileCheckError("no member in the archive")
    if total < end + 2 * _TAR_RECORD:  # a tar ends with two zero records; a cut one lacks them
        raise FileCheckError(
            f"the tar data stops at byte {total} without the end-of-archive records"
        )
    return f"tar archive, {n_members} members read through"


def _check_compressed(path: Path, name: str) -> str:
    """Decompress the whole stream (its CRC and end marker are checked at the end)."""
    n = 0
    with _stream(path, name) as raw:
        while block := raw.read(_BLOCK):
            n += len(block)
    return f"compressed stream, {n} bytes decompressed"


def _check_zip(path: Path) -> str:
    """Open the central directory (at the end of the file) and check every member's CRC."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            n = len(zf.namelist())
    except zipfile.BadZipFile as err:
        raise FileCheckError(f"not a complete zip container: {err}") from err
    if bad is not None:
        raise FileCheckError(f"member {bad} fails its CRC check")
    return f"zip container, {n} members CRC-checked"


def _check_xlsx(path: Path) -> str:
    """A complete zip container whose every sheet openpyxl parses."""
    what = _check_zip(path)
    try:
        sheets = pd.read_excel(path, sheet_name=None, engine="openpyxl")
    except ImportError:
        log.warning("%s: openpyxl is not installed; only the zip container was checked", path)
        return what
    except (ValueError, KeyError, OSError, zipfile.BadZipFile, ElementTree.ParseError) as err:
        raise FileCheckError(f"not a readable xlsx workbook: {err}") from err
    return f"xlsx workbook, {len(sheets)} sheet(s) parsed"


def _last_line(path: Path) -> bytes:
    """The last non-empty line of a file (read from its end)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 4 * _BLOCK))
        tail = fh.read()
    lines = [line for line in tail.splitlines() if line.strip()]
    return lines[-1] if lines else b""


def _check_table(path: Path, name: str) -> str:
    """Parse a TSV/CSV; a last line with fewer fields than the header is a cut file."""
    sep = "," if name.endswith(".csv") else "\t"
    with open(path, "rb") as fh:
        n_comment = 0
        while fh.readline().startswith(b"#"):
            n_comment += 1
    try:
        table = pd.read_csv(
            path, sep=sep, dtype=str, na_filter=False, skiprows=n_comment, low_memory=False
        )
    except (ValueError, UnicodeDecodeError) as err:  # pandas' ParserError is a ValueError
        raise FileCheckError(f"not a readable table: {err}") from err
    last = _last_line(path).decode("utf-8", errors="replace")
    n_fields = len(next(csv.reader([last], delimiter=sep), []))
    if len(table) and n_fields < len(table.columns):
        raise FileCheckError(
            f"its last line has {n_fields} fields, the header {len(table.columns)}: the file "
            "is cut short"
        )
    return f"table, {len(table)} rows x {len(table.columns)} columns parsed"


def check_file(path: PathLike, *, name: str | None = None) -> str | None:
    """Check `path` as the type `name` (default: its own name) gives; what was checked, or None.

    Raises FileCheckError when the file is cut or unreadable as that type. None: no check exists
    for the type (the caller relies on the size or a checksum).
    """
    p = Path(path)
    name = (name or p.name).lower()
    kind = file_kind(name)
    if p.stat().st_size == 0 and kind is not None:
        raise FileCheckError("the file is empty")
    try:
        if kind == "tar":
            return _check_tar(p, name)
        if kind == "compressed":
            return _check_compressed(p, name)
        if kind == "xlsx":
            return _check_xlsx(p)
        if kind == "zip":
            return _check_zip(p)
        if kind == "table":
            return _check_table(p, name)
    except FileCheckError:
        raise
    except _READ_ERRORS as err:
        raise FileCheckError(f"not a complete {kind} file: {type(err).__name__}: {err}") from err
    return None
