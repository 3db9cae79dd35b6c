"""Downloads that end, are verified, and never leak secrets (against the fake GDC of test_gdc).

A stale manifest (the server's file is shorter or longer than the expected size) is an error
naming the file and both sizes instead of an endless restart loop; restarts and bytes are
bounded; a file without a checksum is checked by what it claims to be (announced length, archive
read through, table/workbook parsed) before it is kept, and an existing damaged one is replaced;
URLs reach no log line or exception with their query string or password.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import tarfile
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_gdc import FAST, FakeGDC, fetch, make_hit, serve_file  # tests/ is on sys.path

from mmsurv.acquire import gdc_api, gdc_slides, transfer
from mmsurv.acquire.filecheck import FileCheckError, check_file
from mmsurv.acquire.retry import redact_url
from mmsurv.features.weights import fetch_weights

SECRET = "SECRET-t0k3n"


@pytest.fixture
def fake() -> Iterator[FakeGDC]:
    server = FakeGDC()
    yield server
    server.close()


def _label(fid: str) -> str:
    """The label `fetch` gives, as a regex."""
    return re.escape(f"slide S-{fid[-4:]} (GDC file {fid})")


# --------------------------------------------------------------------------------------------
# 1. a download that cannot complete ends, with the sizes in the message
# --------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)  # before the fix this looped for ever
def test_stale_manifest_size_is_an_error_not_an_endless_restart(
    fake: FakeGDC, tmp_path: Path
) -> None:
    fid, data, _ = serve_file(fake, n_bytes=5000)
    dest = tmp_path / "s.svs"
    with pytest.raises(
        transfer.ChecksumError,
        match=rf"{_label(fid)}: size mismatch: the server's file has 5000 bytes, the manifest "
        r"says 5010",
    ):
        fetch(fake, fid, dest, size=len(data) + 10)
    assert len(fake.data_requests(fid)) == 1
    assert not dest.exists() and not Path(f"{dest}.part").exists()


@pytest.mark.timeout(60)
def test_stale_manifest_without_content_length_fails_on_the_416(
    fake: FakeGDC, tmp_path: Path
) -> None:
    fid, data, _ = serve_file(fake, n_bytes=5000)
    fake.default = "no_length"  # the body ends when the server closes: nothing to compare
    dest = tmp_path / "s.svs"
    with pytest.raises(
        transfer.ChecksumError,
        match=rf"{_label(fid)}: size mismatch: received 5000 bytes and the server has no more "
        r"\(HTTP 416, its file has 5000 bytes\); the manifest says 5010",
    ):
        fetch(fake, fid, dest, size=len(data) + 10)
    ranges = [s.headers.get("Range") for s in fake.data_requests(fid)]
    assert ranges == [None, "bytes=5000-"]
    assert not dest.exists() and not Path(f"{dest}.part").exists()


@pytest.mark.timeout(60)
def test_restarts_from_byte_zero_are_capped(fake: FakeGDC, tmp_path: Path) -> None:
    fid, data, _ = serve_file(fake, n_bytes=5000)
    fake.default, fake.range_total = "no_length", False  # a 416 that does not say the size
    with pytest.raises(
        transfer.DownloadError,
        match=rf"{_label(fid)}: giving up: the download restarted from byte 0 more than 2 "
        r"time\(s\) \(15000 bytes received in all, expected size 5010\)",
    ):
        fetch(fake, fid, tmp_path / "s.svs", size=len(data) + 10, max_restarts=2)
    # full, 416, restart 1, 416, restart 2, 416, restart 3 refused before its body is read
    assert len(fake.data_requests(fid)) == 7


@pytest.mark.timeout(60)
def test_bytes_received_are_capped(fake: FakeGDC, tmp_path: Path) -> None:
    fid, data, _ = serve_file(fake, n_bytes=5000)
    fake.default, fake.range_total = "no_length", False
    with pytest.raises(
        transfer.DownloadError,
        match=rf"{_label(fid)}: giving up after receiving \d+ bytes in all, more than 2.5 x the "
        r"expected 5010 bytes",
    ):
        fetch(
            fake,
            fid,
            tmp_path / "s.svs",
            size=len(data) + 10,
            max_restarts=100,
            max_bytes_factor=2.5,
        )
    assert len(fake.data_requests(fid)) == 5  # full, 416, full, 416, the third full one


# --------------------------------------------------------------------------------------------
# 4. unchecked downloads are verified by what they claim to be
# --------------------------------------------------------------------------------------------


def test_announced_length_is_enforced_without_a_manifest_size(
    fake: FakeGDC, tmp_path: Path
) -> None:
    fid, data, _ = serve_file(fake, n_bytes=40_000)
    # cut with a Content-Length, then a resume without one that also ends early
    fake.plans[fid] = ["cut", "no_length_cut"]
    dest = fetch(fake, fid, tmp_path / "f.bin")  # no size, no md5
    assert dest.read_bytes() == data
    ranges = [s.headers.get("Range") for s in fake.data_requests(fid)]
    assert ranges[0] is None and len(ranges) == 3  # the second resume completes the file


def _archive(n_members: int = 3, member_bytes: int = 60_000) -> bytes:
    """A study-like .tar.gz whose members do not compress much (so a cut lands inside one)."""
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i in range(n_members):
            payload = rng.integers(0, 256, member_bytes, dtype=np.uint8).tobytes()
            info = tarfile.TarInfo(f"study/data_{i}.txt")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _serve(fake: FakeGDC, name: str, data: bytes, default: str) -> str:
    fake.files[name] = data
    fake.default = default
    return f"{fake.url}/data/{name}"


def test_cut_archive_without_length_is_deleted_with_a_message(
    fake: FakeGDC, tmp_path: Path
) -> None:
    url = _serve(fake, "study.tar.gz", _archive(), "no_length_cut")
    dest = tmp_path / "study.tar.gz"
    with pytest.raises(
        transfer.ChecksumError,
        match=r"cBioPortal study S: the downloaded file is damaged or cut short \(not a complete "
        r"tar file: EOFError: .*\); deleted .*study.tar.gz.part",
    ):
        transfer.fetch_source(url, dest, md5=None, label="cBioPortal study S", download=FAST)
    assert not dest.exists() and not Path(f"{dest}.part").exists()


def test_existing_cut_archive_is_downloaded_again(
    fake: FakeGDC, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _archive()
    url = _serve(fake, "study.tar.gz", data, "no_length")
    dest = tmp_path / "study.tar.gz"
    dest.write_bytes(data[: len(data) // 2])  # left by an earlier run against a bad server
    with caplog.at_level(logging.INFO, logger="mmsurv.acquire.transfer"):
        transfer.fetch_source(url, dest, md5=None, label="study S", download=FAST)
    assert dest.read_bytes() == data
    assert "is damaged" in caplog.text and "deleted, downloading again" in caplog.text
    assert "checked as a tar archive, 3 members read through" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mmsurv.acquire.transfer"):
        transfer.fetch_source(url, dest, md5=None, label="study S", download=FAST)
    assert "already present" in caplog.text and "; kept" in caplog.text
    assert len(fake.data_requests("study.tar.gz")) == 1  # the good file was kept


def _workbook() -> bytes:
    buf = io.BytesIO()
    rows = pd.DataFrame({"bcr_patient_barcode": [f"TCGA-X1-{i:04d}" for i in range(400)]})
    rows["OS.time"] = np.arange(400) * 7.5
    with pd.ExcelWriter(buf, engine="openpyxl") as xl:
        rows.to_excel(xl, sheet_name="TCGA-CDR", index=False)
    return buf.getvalue()


def _table() -> bytes:
    lines = ["case_id\ttype\tOS\tOS.time\tnote"]
    lines += [f"TCGA-X1-{i:04d}\tBLCA\t{i % 2}\t{100 + i}\tfree text {i}" for i in range(300)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    ("name", "content"),
    [("cdr.xlsx", _workbook()), ("cdr.tsv", _table())],
    ids=["xlsx", "tsv"],
)
def test_cut_workbook_or_table_is_rejected_and_a_whole_one_kept(
    fake: FakeGDC, tmp_path: Path, name: str, content: bytes
) -> None:
    if name.endswith(".tsv"):  # the cut lands inside a line, before its last field
        assert content[: len(content) // 2].rsplit(b"\n", 1)[-1].count(b"\t") < 4
    url = _serve(fake, name, content, "no_length_cut")
    with pytest.raises(transfer.ChecksumError, match=r"TCGA-CDR: .*damaged or cut short"):
        transfer.fetch_source(url, tmp_path / name, md5=None, label="TCGA-CDR", download=FAST)
    assert not (tmp_path / name).exists()
    fake.default = "no_length"
    dest = transfer.fetch_source(url, tmp_path / name, md5=None, label="TCGA-CDR", download=FAST)
    assert dest.read_bytes() == content


def test_check_file_by_type(tmp_path: Path) -> None:
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        for i in range(2):
            info = tarfile.TarInfo(f"m{i}")
            info.size = 1024
            tar.addfile(info, io.BytesIO(b"x" * 1024))
    whole = plain.getvalue()
    (tmp_path / "a.tar").write_bytes(whole)
    assert check_file(tmp_path / "a.tar") == "tar archive, 2 members read through"
    (tmp_path / "cut.tar").write_bytes(whole[: 512 + 1024])  # ends exactly after member 1
    with pytest.raises(FileCheckError, match="without the end-of-archive records"):
        check_file(tmp_path / "cut.tar")
    (tmp_path / "empty.tsv").write_bytes(b"")
    with pytest.raises(FileCheckError, match="empty"):
        check_file(tmp_path / "empty.tsv")
    (tmp_path / "w.pth").write_bytes(b"anything")
    assert check_file(tmp_path / "w.pth") is None  # no check for this type


# --------------------------------------------------------------------------------------------
# 6. no secret in a log line or an exception
# --------------------------------------------------------------------------------------------


def test_redact_url() -> None:
    assert redact_url(f"https://u:{SECRET}@host.org:8443/a/b.tar.gz?X-Amz-Signature={SECRET}") == (
        "https://host.org:8443/a/b.tar.gz?<redacted>"
    )
    assert (
        redact_url("https://api.gdc.cancer.gov/data/1b5f") == "https://api.gdc.cancer.gov/data/1b5f"
    )


def _shown(err: BaseException) -> str:
    """What a user sees of an exception: its message and the whole printed traceback chain."""
    return "".join(traceback.format_exception(type(err), err, err.__traceback__))


def test_secrets_in_urls_reach_no_log_and_no_exception(
    fake: FakeGDC, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # what a job logs
    caplog.set_level(logging.DEBUG, logger="mmsurv")
    fid, data, md5 = serve_file(fake, n_bytes=5000)
    host = fake.url.removeprefix("http://")
    signed = f"http://user:{SECRET}@{host}/data/{fid}?token={SECRET}&expires=99"
    errors: list[BaseException] = []

    fake.plans[fid] = ["500", "cut"]  # a retry and a resume are logged with their reasons
    dest = transfer.download_file(signed, tmp_path / "ok.svs", md5=md5, chunk_size=1024, **FAST)
    assert dest.read_bytes() == data
    fake.plans[fid] = ["403_echo"]  # a 4xx whose body echoes the signed request
    with pytest.raises(transfer.DownloadError, match="HTTP 403") as e403:
        transfer.download_file(signed, tmp_path / "no.svs", md5=md5, **FAST)
    errors.append(e403.value)
    refused = f"http://user:{SECRET}@127.0.0.1:9/data/x?token={SECRET}"  # nothing listens
    with pytest.raises(transfer.DownloadError, match="giving up after") as erefused:
        transfer.download_file(refused, tmp_path / "x.svs", **{**FAST, "retries": 1})
    errors.append(erefused.value)
    with pytest.raises(transfer.DownloadError, match="not retried") as ebad:
        transfer.download_file(f"http://[::1/x?token={SECRET}", tmp_path / "y.svs", **FAST)
    errors.append(ebad.value)

    sha = hashlib.sha256(data).hexdigest()  # encoder weights from a signed URL
    fetch_weights(signed, tmp_path / "w.pth", sha256=sha, download=FAST)
    fake.plans[fid] = ["404"]
    with pytest.raises(transfer.DownloadError, match="HTTP 404") as e404:
        fetch_weights(signed, tmp_path / "w2.pth", sha256=sha, download=FAST)
    errors.append(e404.value)
    with pytest.raises(ValueError, match="no features.weights_sha256") as enohash:
        fetch_weights(f"{signed}&name=model.pth", tmp_path / "w3.pth", download=FAST)
    errors.append(enohash.value)

    listing = f"{fake.url}/files?key={SECRET}"  # the files endpoint (slide and omics listings)
    fake.hits = [make_hit(0)]
    fake.files_plan = ["500"]
    gdc_slides.query_slide_manifest(["TCGA-BLCA"], files_endpoint=listing, **FAST)
    fake.files_plan = ["403"]
    with pytest.raises(gdc_api.ManifestError, match="HTTP 403") as elist:
        gdc_slides.query_slide_manifest(["TCGA-BLCA"], files_endpoint=listing, **FAST)
    errors.append(elist.value)

    logged = "\n".join(
        r.getMessage() + (_shown(r.exc_info[1]) if r.exc_info else "") for r in caplog.records
    )
    assert "?<redacted>" in logged and "attempt 1/" in logged and "resuming" in logged
    assert "GDC slide listing of TCGA-BLCA" in logged
    assert SECRET not in logged
    for err in errors:
        assert SECRET not in _shown(err), _shown(err)
