"""GDC slide manifest and resumable download against a local HTTP server that imitates the GDC."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from snakemake.utils import validate

from mmsurv.acquire import gdc, gdc_api, gdc_omics, gdc_slides, transfer
from mmsurv.io import read_slide_sheet

REPO = Path(__file__).resolve().parents[1]
SAMPLES_SCHEMA = REPO / "workflow" / "schemas" / "samples.schema.yaml"
FAST = {"retries": 3, "backoff": 0.01, "max_backoff": 0.05, "timeout": 5.0}


@dataclass
class Seen:
    """One request the fake server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class FakeGDC:
    """A threaded HTTP server with the GDC's /files (paginated search) and /data/{id} endpoints.

    `plans[file_id]` lists what the next requests for that file get: "ok", "cut" (headers for
    the full answer, then half its bytes, then the connection closes), "500", "429", "404",
    "403_echo" (403 whose body echoes the request line, as S3 does), "ignore_range" (200 with
    the whole file whatever the Range), "slow" (answers after 0.6 s), "no_length" (no
    Content-Length: the body ends when the connection closes), "no_length_cut" (the same, after
    half the body). When a plan is used up, `default` applies. `files_plan` does the same for
    /files requests. `range_total=False` leaves the `*/N` out of 416 answers. Query strings
    are ignored.
    """

    hits: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    plans: dict[str, list[str]] = field(default_factory=dict)
    files_plan: list[str] = field(default_factory=list)
    default: str = "ok"
    range_total: bool = True
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # clients that hung up
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def download_cfg(self) -> dict[str, Any]:
        return {
            "files_endpoint": f"{self.url}/files",
            "data_endpoint": f"{self.url}/data/{{file_id}}",
            "page_size": 2,
            **FAST,
        }

    def data_requests(self, file_id: str) -> list[Seen]:
        return [s for s in self.seen if s.path == f"/data/{file_id}"]

    def next_mode(self, plan: list[str]) -> str:
        with self._lock:
            return plan.pop(0) if plan else self.default

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# file filter fields the fake applies (slide hits have no data_type, omics hits no data_format)
_FILE_FIELDS = {
    "files.data_format": "data_format",
    "files.data_category": "data_category",
    "files.data_type": "data_type",
    "files.analysis.workflow_type": "workflow_type",
}


def _matching(hits: list[dict[str, Any]], filters: dict[str, Any]) -> list[dict[str, Any]]:
    """The hits whose project, format, category, type and workflow the filter allows."""
    for clause in filters.get("content", []):
        field, wanted = clause["content"]["field"], set(clause["content"]["value"])
        if field == "cases.project.project_id":
            hits = [h for h in hits if h["cases"][0]["project"]["project_id"] in wanted]
        elif field in _FILE_FIELDS:
            hits = [h for h in hits if _hit_value(h, _FILE_FIELDS[field]) in wanted]
    return hits


def _hit_value(hit: dict[str, Any], key: str) -> Any:
    """A hit's value for a filter key (`workflow_type` sits under `analysis`), None if absent."""
    if key == "workflow_type":
        return (hit.get("analysis") or {}).get("workflow_type")
    return hit.get(key)


def _make_handler(fake: FakeGDC) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection; a cut is a closed socket

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
            pass

        def _record(self, body: dict[str, Any] | None) -> None:
            path = self.path.split("?", 1)[0]
            with fake._lock:
                fake.seen.append(Seen(self.command, path, dict(self.headers), body))

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            self._record(body)
            mode = fake.next_mode(fake.files_plan)
            if mode != "ok":
                self._send(int(mode), b'{"message": "scripted failure"}')
                return
            hits = _matching(fake.hits, body.get("filters", {}))
            start, size = int(body.get("from", 0)), int(body.get("size", 10))
            page = hits[start : start + size]
            doc = {
                "data": {
                    "hits": page,
                    "pagination": {
                        "count": len(page),
                        "total": len(hits),
                        "size": size,
                        "from": start,
                    },
                },
                "warnings": {},
            }
            self._send(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})

        def do_GET(self) -> None:
            self._record(None)
            path = self.path.split("?", 1)[0]
            file_id = path.rsplit("/", 1)[-1]
            if not path.startswith("/data/") or file_id not in fake.files:
                self._send(404, b"no such file")
                return
            mode = fake.next_mode(fake.plans.setdefault(file_id, []))
            if mode in ("500", "429", "404"):
                self._send(int(mode), b"scripted failure", {"Retry-After": "0"})
                return
            if mode == "403_echo":
                self._send(403, f"<Error>AccessDenied for GET {self.path}</Error>".encode())
                return
            if mode == "slow":
                time.sleep(0.6)
            data = fake.files[file_id]
            rng = self.headers.get("Range")
            if rng and mode != "ignore_range":
                first = int(rng.removeprefix("bytes=").split("-")[0])
                if first >= len(data):
                    total = {"Content-Range": f"bytes */{len(data)}"} if fake.range_total else {}
                    self._send(416, b"", total)
                    return
                status, body = 206, data[first:]
                headers = {"Content-Range": f"bytes {first}-{len(data) - 1}/{len(data)}"}
            else:
                status, body, headers = 200, data, {}
            if mode == "cut":
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                return  # HTTP/1.0: the server closes the connection here
            if mode in ("no_length", "no_length_cut"):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body if mode == "no_length" else body[: len(body) // 2])
                self.wfile.flush()
                return  # no Content-Length: the closed connection is a clean end of the body
            self._send(status, body, headers)

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeGDC]:
    server = FakeGDC()
    yield server
    server.close()


def make_hit(i: int, project: str = "TCGA-BLCA", n_cases: int = 1) -> dict[str, Any]:
    """A files-endpoint hit shaped like the GDC's (fields requested by MANIFEST_FIELDS)."""
    fid = str(uuid.UUID(int=i + 1))
    case = f"TCGA-{project[-2:]}-{i:04d}"
    return {
        "id": fid,
        "file_id": fid,
        "file_name": f"{case}-01Z-00-DX1.{fid.upper()}.svs",
        "file_size": 1000 + i,
        "md5sum": hashlib.md5(str(i).encode()).hexdigest(),
        "data_format": "SVS",
        "experimental_strategy": "Diagnostic Slide",
        "access": "open",
        "cases": [
            {"submitter_id": f"{case}{'' if k == 0 else k}", "project": {"project_id": project}}
            for k in range(n_cases)
        ],
    }


def serve_file(fake: FakeGDC, n_bytes: int = 100_003, seed: int = 0) -> tuple[str, bytes, str]:
    """Register random content under a new file id; returns (file_id, bytes, md5)."""
    data = np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes()
    fid = str(uuid.UUID(int=10_000 + seed))
    fake.files[fid] = data
    return fid, data, hashlib.md5(data).hexdigest()


def fetch(fake: FakeGDC, fid: str, dest: Path, **kwargs: Any) -> Path:
    """download_file with the test server's URL and fast retries."""
    opts = {**FAST, "chunk_size": 4096, "label": f"slide S-{fid[-4:]} (GDC file {fid})", **kwargs}
    return transfer.download_file(f"{fake.url}/data/{fid}", dest, **opts)


# --------------------------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------------------------


def test_manifest_pages_through_the_listing_with_the_slide_filters(fake: FakeGDC) -> None:
    fake.hits = [make_hit(i) for i in range(5)]
    manifest = gdc_slides.query_slide_manifest(
        ["TCGA-BLCA"], files_endpoint=f"{fake.url}/files", page_size=2, **FAST
    )
    posts = [s for s in fake.seen if s.method == "POST"]
    assert [(p.body["from"], p.body["size"]) for p in posts] == [(0, 2), (2, 2), (4, 2)]
    assert posts[0].body["filters"] == {
        "op": "and",
        "content": [
            {"op": "in", "content": {"field": "cases.project.project_id", "value": ["TCGA-BLCA"]}},
            {"op": "in", "content": {"field": "files.data_format", "value": ["SVS"]}},
            {
                "op": "in",
                "content": {"field": "files.experimental_strategy", "value": ["Diagnostic Slide"]},
            },
            {"op": "in", "content": {"field": "files.access", "value": ["open"]}},
        ],
    }
    fields = posts[0].body["fields"].split(",")
    for f in ["file_id", "file_name", "file_size", "md5sum", "cases.submitter_id"]:
        assert f in fields
    assert list(manifest.columns) == gdc_slides.MANIFEST_COLUMNS
    assert len(manifest) == 5
    first = manifest.iloc[0]
    hit = make_hit(0)
    assert first["slide_id"] == hit["file_name"].removesuffix(".svs")
    assert first["case_id"] == "TCGA-CA-0000"
    assert first["cohort"] == first["project_id"] == "TCGA-BLCA"
    assert (first["file_id"], first["file_size"], first["md5sum"]) == (
        hit["file_id"],
        hit["file_size"],
        hit["md5sum"],
    )


def test_manifest_retries_a_failed_page(fake: FakeGDC) -> None:
    fake.hits = [make_hit(i) for i in range(3)]
    fake.files_plan = ["500", "ok", "503"]
    manifest = gdc_slides.query_slide_manifest(
        ["TCGA-BLCA"], cohort="BLCA", files_endpoint=f"{fake.url}/files", page_size=2, **FAST
    )
    assert len(manifest) == 3 and set(manifest["cohort"]) == {"BLCA"}
    assert len([s for s in fake.seen if s.method == "POST"]) == 4


@pytest.mark.parametrize(
    ("hits", "match"),
    [
        ([make_hit(0, "TCGA-BLCA")], r"no open diagnostic slide for project\(s\) \['TCGA-LUAD'\]"),
        ([make_hit(0, n_cases=2)], r"GDC file 00000000-0000-0000-0000-000000000001 .* 2 cases"),
        ([{**make_hit(0), "md5sum": None}], r"GDC file 0+-0+-0+-0+-0+1: hit has no `md5sum`"),
        ([{**make_hit(0), "file_name": "x.tif"}], r"file name 'x.tif' does not end with .svs"),
    ],
)
def test_manifest_rejects_unusable_answers(fake: FakeGDC, hits: list[dict], match: str) -> None:
    fake.hits = hits
    with pytest.raises(gdc_api.ManifestError, match=match):
        gdc_slides.query_slide_manifest(
            ["TCGA-BLCA", "TCGA-LUAD"], cohort="C", files_endpoint=f"{fake.url}/files", **FAST
        )


def test_manifest_4xx_is_not_retried(fake: FakeGDC) -> None:
    fake.files_plan = ["400"]
    with pytest.raises(gdc_api.ManifestError, match="HTTP 400 .*not retried"):
        gdc_slides.query_slide_manifest(["TCGA-BLCA"], files_endpoint=f"{fake.url}/files", **FAST)
    assert len(fake.seen) == 1


# --------------------------------------------------------------------------------------------
# omics manifest (acquisition.omics.source: gdc)
# --------------------------------------------------------------------------------------------

OMICS_KIND = {
    "rnaseq": ("Transcriptome Profiling", "Gene Expression Quantification", "STAR - Counts"),
    "cnv": ("Copy Number Variation", "Gene Level Copy Number", "ASCAT3"),
}


def sample_entry(barcode: str, aliquots: list[str] | None = None) -> dict[str, Any]:
    """A `cases.samples` entry as the GDC nests it (sample → portions → analytes → aliquots)."""
    entry: dict[str, Any] = {"submitter_id": barcode}
    if aliquots is not None:
        entry["portions"] = [{"analytes": [{"aliquots": [{"submitter_id": a} for a in aliquots]}]}]
    return entry


def make_omics_hit(
    file_id: str,
    modality: str,
    case: str,
    samples: list[dict[str, Any]],
    *,
    project: str = "TCGA-BLCA",
    data: bytes = b"x",
    file_name: str | None = None,
) -> dict[str, Any]:
    """A files-endpoint hit of an omics file, with the fields OMICS_FIELDS requests."""
    category, data_type, workflow = OMICS_KIND[modality]
    return {
        "id": file_id,
        "file_id": file_id,
        "file_name": file_name or f"{file_id}.{modality}.tsv",
        "file_size": len(data),
        "md5sum": hashlib.md5(data).hexdigest(),
        "data_category": category,
        "data_type": data_type,
        "analysis": {"workflow_type": workflow},
        "access": "open",
        "cases": [{"submitter_id": case, "project": {"project_id": project}, "samples": samples}],
    }


def _omics_hits() -> list[dict[str, Any]]:
    """Five STAR-counts files (two aliquots of A001) and three tumour/normal CNV files."""
    hits = [
        make_omics_hit(
            str(uuid.UUID(int=100 + i)),
            "rnaseq",
            f"TCGA-X1-A00{i}",
            [sample_entry(f"TCGA-X1-A00{i}-01A", [f"TCGA-X1-A00{i}-01A-11R-A277-07"])],
        )
        for i in range(1, 5)
    ]
    hits.append(
        make_omics_hit(
            str(uuid.UUID(int=105)),
            "rnaseq",
            "TCGA-X1-A001",
            [sample_entry("TCGA-X1-A001-01B", ["TCGA-X1-A001-01B-21R-A277-07"])],
        )
    )
    hits += [
        make_omics_hit(
            str(uuid.UUID(int=200 + i)),
            "cnv",
            f"TCGA-X1-A00{i}",
            [  # tumour and matched blood normal, as for ASCAT calls
                sample_entry(f"TCGA-X1-A00{i}-10A", [f"TCGA-X1-A00{i}-10A-01D-A27A-01"]),
                sample_entry(f"TCGA-X1-A00{i}-01A", [f"TCGA-X1-A00{i}-01A-11D-A27A-01"]),
            ],
        )
        for i in range(1, 4)
    ]
    return hits


def test_omics_manifest_pages_through_each_modality_with_its_filters(fake: FakeGDC) -> None:
    fake.hits = [*_omics_hits(), make_hit(0)]  # a slide in the same project is not listed
    manifest = gdc_omics.query_omics_manifest(
        ["TCGA-BLCA"], cohort="BLCA", files_endpoint=f"{fake.url}/files", page_size=2, **FAST
    )
    posts = [s for s in fake.seen if s.method == "POST"]
    # 5 STAR-counts files in pages of 2, then 3 copy-number files
    assert [(p.body["from"], p.body["size"]) for p in posts] == [
        (0, 2),
        (2, 2),
        (4, 2),
        (0, 2),
        (2, 2),
    ]
    clauses = posts[0].body["filters"]["content"]
    assert clauses == [
        {"op": "in", "content": {"field": "cases.project.project_id", "value": ["TCGA-BLCA"]}},
        {
            "op": "in",
            "content": {"field": "files.data_category", "value": ["Transcriptome Profiling"]},
        },
        {
            "op": "in",
            "content": {"field": "files.data_type", "value": ["Gene Expression Quantification"]},
        },
        {
            "op": "in",
            "content": {"field": "files.analysis.workflow_type", "value": ["STAR - Counts"]},
        },
        {"op": "in", "content": {"field": "files.access", "value": ["open"]}},
    ]
    assert posts[3].body["filters"]["content"][3]["content"]["value"] == ["ASCAT3"]
    assert "cases.samples.submitter_id" in posts[0].body["fields"].split(",")
    assert list(manifest.columns) == gdc_omics.OMICS_MANIFEST_COLUMNS
    assert manifest["modality"].value_counts().to_dict() == {"rnaseq": 5, "cnv": 3}
    assert set(manifest["cohort"]) == {"BLCA"}
    cnv = manifest[manifest["modality"] == "cnv"].set_index("case_id")
    assert cnv.loc["TCGA-X1-A002", "sample_id"] == "TCGA-X1-A002-01A"  # the tumour, not 10A
    assert cnv.loc["TCGA-X1-A002", "aliquot_id"] == "TCGA-X1-A002-01A-11D-A27A-01"
    rna = manifest[manifest["modality"] == "rnaseq"]
    assert list(rna.loc[rna["case_id"] == "TCGA-X1-A001", "sample_id"]) == [
        "TCGA-X1-A001-01A",
        "TCGA-X1-A001-01B",
    ]  # both listed; choose_samples picks one when the table is built


def test_omics_manifest_config_changes_the_filter_values(fake: FakeGDC, tmp_path: Path) -> None:
    hits = _omics_hits()
    hits[-1] = {**hits[-1], "analysis": {"workflow_type": "AscatNGS"}}
    fake.hits = hits
    omics = {"cnv": {"workflow_type": "AscatNGS"}, "access": "open"}
    manifest = gdc_omics.write_cohort_omics_manifest(
        "TCGA-BLCA", tmp_path / "m.tsv", download=fake.download_cfg, omics=omics
    )
    assert list(manifest.loc[manifest["modality"] == "cnv", "case_id"]) == ["TCGA-X1-A003"]
    assert gdc_omics.read_omics_manifest(tmp_path / "m.tsv").equals(manifest)
    with pytest.raises(ValueError, match=r"acquisition.omics.gdc: unknown key\(s\) \['rna'\]"):
        gdc_omics.omics_settings({"rna": {}})


def test_omics_manifest_keeps_one_file_per_barcode(
    fake: FakeGDC, caplog: pytest.LogCaptureFixture
) -> None:
    hits = _omics_hits()
    twin = {**hits[1], "id": str(uuid.UUID(int=99)), "file_id": str(uuid.UUID(int=99))}
    fake.hits = [*hits, twin]
    with caplog.at_level(logging.WARNING, logger="mmsurv.acquire.gdc_omics"):
        manifest = gdc_omics.query_omics_manifest(
            ["TCGA-BLCA"], cohort="BLCA", files_endpoint=f"{fake.url}/files", **FAST
        )
    rna = manifest[manifest["modality"] == "rnaseq"]
    assert list(rna.loc[rna["case_id"] == "TCGA-X1-A002", "file_id"]) == [twin["file_id"]]
    assert "rnaseq TCGA-X1-A002-01A-11R-A277-07 has several files" in caplog.text


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"samples": []},
            r"GDC rnaseq file 0+-0+-0+-0+-0+65 \(.*case TCGA-X1-A001\): hit has no "
            r"`cases.samples.submitter_id`",
        ),
        (
            {"samples": [sample_entry("TCGA-X1-A001-01A"), sample_entry("TCGA-X1-A001-01B")]},
            r"linked to samples \['TCGA-X1-A001-01A', 'TCGA-X1-A001-01B'\]; expected exactly one "
            "tumour",
        ),
        (
            {"samples": [sample_entry("TCGA-X1-A009-01A")]},
            r"\['TCGA-X1-A009-01A'\] are not of case",
        ),
        ({"samples": [sample_entry("X1-A001")]}, "not a TCGA sample barcode: 'X1-A001'"),
    ],
)
def test_omics_manifest_rejects_unusable_samples(
    fake: FakeGDC, change: dict[str, Any], match: str
) -> None:
    hits = _omics_hits()
    hits[0]["cases"][0].update(change)
    fake.hits = hits
    with pytest.raises(gdc_api.ManifestError, match=match):
        gdc_omics.query_omics_manifest(
            ["TCGA-BLCA"], cohort="BLCA", files_endpoint=f"{fake.url}/files", **FAST
        )


def test_omics_manifest_names_the_modality_a_project_lacks(fake: FakeGDC) -> None:
    fake.hits = [h for h in _omics_hits() if h["data_type"] != "Gene Level Copy Number"]
    with pytest.raises(
        gdc_api.ManifestError,
        match=r"GDC cnv listing of TCGA-BLCA \(Gene Level Copy Number, ASCAT3; .*no open file for "
        r"project\(s\) \['TCGA-BLCA'\].*acquisition.omics.gdc.cnv",
    ):
        gdc_omics.query_omics_manifest(
            ["TCGA-BLCA"], cohort="BLCA", files_endpoint=f"{fake.url}/files", **FAST
        )


# --------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------


def test_cut_transfer_resumes_with_range_and_is_byte_identical(
    fake: FakeGDC, tmp_path: Path
) -> None:
    fid, data, md5 = serve_file(fake, n_bytes=24 * 4096)  # the cut falls on a chunk boundary
    fake.plans[fid] = ["cut"]
    dest = fetch(fake, fid, tmp_path / fid / "slide.svs", md5=md5, size=len(data))
    seen = fake.data_requests(fid)
    assert len(seen) == 2
    assert "Range" not in seen[0].headers
    assert seen[1].headers["Range"] == f"bytes={len(data) // 2}-"
    assert dest.read_bytes() == data
    assert not (tmp_path / fid / "slide.svs.part").exists()


def test_500_then_success(fake: FakeGDC, tmp_path: Path) -> None:
    fid, data, md5 = serve_file(fake)
    fake.plans[fid] = ["500", "429"]
    dest = fetch(fake, fid, tmp_path / "s.svs", md5=md5, size=len(data))
    assert dest.read_bytes() == data
    assert len(fake.data_requests(fid)) == 3


def test_read_timeout_is_retried(fake: FakeGDC, tmp_path: Path) -> None:
    fid, data, md5 = serve_file(fake)
    fake.plans[fid] = ["slow"]
    dest = fetch(fake, fid, tmp_path / "s.svs", md5=md5, size=len(data), timeout=0.2)
    assert dest.read_bytes() == data


def test_wrong_md5_is_rejected_naming_the_slide(fake: FakeGDC, tmp_path: Path) -> None:
    fid, data, _ = serve_file(fake)
    dest = tmp_path / "s.svs"
    with pytest.raises(
        transfer.ChecksumError, match=rf"slide S-{fid[-4:]} \(GDC file {fid}\): md5"
    ):
        fetch(fake, fid, dest, md5="0" * 32, size=len(data))
    assert not dest.exists()
    assert not Path(f"{dest}.part").exists()


def test_wrong_size_is_rejected(fake: FakeGDC, tmp_path: Path) -> None:
    fid, data, md5 = serve_file(fake)
    dest = tmp_path / "s.svs"
    with pytest.raises(
        transfer.ChecksumError, match=f"GDC file {fid}.*manifest says {len(data) - 5}"
    ):
        fetch(fake, fid, dest, md5=md5, size=len(data) - 5)
    assert not dest.exists() and not Path(f"{dest}.part").exists()


def test_server_that_never_recovers_fails_after_the_configured_retries(
    fake: FakeGDC, tmp_path: Path
) -> None:
    fid, data, md5 = serve_file(fake)
    fake.default = "500"
    dest = tmp_path / "s.svs"
    t0 = time.monotonic()
    with pytest.raises(
        transfer.DownloadError,
        match=rf"GDC file {fid}\): giving up after 4 failed attempt\(s\) \(download.retries=3\); "
        r"last error: HTTP 500",
    ):
        fetch(fake, fid, dest, md5=md5, size=len(data))
    assert len(fake.data_requests(fid)) == 4
    assert time.monotonic() - t0 < 3
    assert not dest.exists()


def test_4xx_is_not_retried(fake: FakeGDC, tmp_path: Path) -> None:
    fid, data, md5 = serve_file(fake)
    fake.plans[fid] = ["404"]
    with pytest.raises(transfer.DownloadError, match="HTTP 404 .*not retried"):
        fetch(fake, fid, tmp_path / "s.svs", md5=md5, size=len(data))
    assert len(fake.data_requests(fid)) == 1


def test_server_ignoring_range_restarts_the_file(fake: FakeGDC, tmp_path: Path) -> None:
    fid, data, md5 = serve_file(fake)
    fake.plans[fid] = ["ignore_range"]
    dest = tmp_path / "s.svs"
    Path(f"{dest}.part").write_bytes(b"x" * 1000)  # not a prefix of the file: must be discarded
    fetch(fake, fid, dest, md5=md5, size=len(data))
    assert fake.data_requests(fid)[0].headers["Range"] == "bytes=1000-"
    assert dest.read_bytes() == data


def test_416_drops_a_part_longer_than_the_file(fake: FakeGDC, tmp_path: Path) -> None:
    fid, data, md5 = serve_file(fake, n_bytes=5000)
    dest = tmp_path / "s.svs"
    Path(f"{dest}.part").write_bytes(b"x" * 6000)
    fetch(fake, fid, dest, md5=md5)  # size unknown: the server's 416 tells
    ranges = [s.headers.get("Range") for s in fake.data_requests(fid)]
    assert ranges == ["bytes=6000-", None]
    assert dest.read_bytes() == data


def test_existing_final_file_is_kept_or_replaced(fake: FakeGDC, tmp_path: Path) -> None:
    fid, data, md5 = serve_file(fake, n_bytes=5000)
    dest = tmp_path / "s.svs"
    dest.write_bytes(b"y" * len(data))
    fetch(fake, fid, dest, md5=md5, size=len(data))
    assert fake.data_requests(fid) == []  # right size: kept without a request
    fetch(fake, fid, dest, md5=md5, size=len(data), verify_existing=True)
    assert dest.read_bytes() == data  # md5 re-check found it wrong and fetched it again
    dest.write_bytes(b"short")
    fetch(fake, fid, dest, md5=md5, size=len(data))
    assert dest.read_bytes() == data


def test_progress_is_logged(
    fake: FakeGDC, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fid, data, md5 = serve_file(fake)
    with caplog.at_level(logging.INFO, logger="mmsurv.acquire.transfer"):
        fetch(fake, fid, tmp_path / "s.svs", md5=md5, size=len(data), progress_every=25_000)
    percents = [r.getMessage() for r in caplog.records if "%)" in r.getMessage()]
    assert len(percents) >= 4
    assert "(100%)" in percents[-1]
    assert any("md5 verified" in r.getMessage() for r in caplog.records)


def test_fetch_slide_uses_the_config_endpoint(fake: FakeGDC, tmp_path: Path) -> None:
    fid, data, md5 = serve_file(fake)
    dest = gdc_slides.fetch_slide(
        fid,
        tmp_path / "x.svs",
        md5=md5,
        size=len(data),
        slide_id="TCGA-XX",
        download=fake.download_cfg,
    )
    assert dest.read_bytes() == data
    with pytest.raises(ValueError, match=r"download.data_endpoint .* must contain .*\{file_id\}"):
        gdc_slides.fetch_slide(
            fid, tmp_path / "y.svs", md5=md5, size=1, download={"data_endpoint": "x"}
        )


# --------------------------------------------------------------------------------------------
# slide sheet and CLI
# --------------------------------------------------------------------------------------------


def test_sheet_from_manifests_is_a_valid_slide_sheet(fake: FakeGDC, tmp_path: Path) -> None:
    fake.hits = [make_hit(i, "TCGA-BLCA") for i in range(3)]
    blca = gdc_slides.write_cohort_manifest(
        "TCGA-BLCA", tmp_path / "m/BLCA.tsv", download=fake.download_cfg
    )
    fake.hits = [make_hit(i, "TCGA-LUAD") for i in range(10, 12)]
    luad = gdc_slides.write_cohort_manifest(
        "TCGA-LUAD", tmp_path / "m/LUAD.tsv", download=fake.download_cfg
    )
    assert gdc_slides.read_manifest(tmp_path / "m/BLCA.tsv").equals(blca)
    sheet = gdc_slides.manifest_to_sheet([blca, luad], "data/slides/")
    gdc_slides.write_slide_sheet(sheet, tmp_path / "slides.tsv")
    read = read_slide_sheet(tmp_path / "slides.tsv", ["TCGA-BLCA", "TCGA-LUAD"])
    validate(read, str(SAMPLES_SCHEMA))
    assert len(read) == 5
    row = read.loc[luad["slide_id"][0]]
    assert row["path"] == f"data/slides/{row['file_id']}/{row['file_name']}"
    assert row["path"].endswith(f"{row['slide_id']}.svs")
    assert (row["cohort"], row["case_id"]) == ("TCGA-LUAD", "TCGA-AD-0010")
    assert int(row["file_size"]) == 1010 and row["md5sum"] == make_hit(10)["md5sum"]


def test_cohort_projects_come_from_config() -> None:
    assert gdc_api.cohort_projects("TCGA-BLCA", None) == ["TCGA-BLCA"]
    cfg = {"projects": {"KIDNEY": ["TCGA-KIRC", "TCGA-KIRP"], "LUNG": "TCGA-LUAD"}}
    assert gdc_api.cohort_projects("KIDNEY", cfg) == ["TCGA-KIRC", "TCGA-KIRP"]
    assert gdc_api.cohort_projects("LUNG", cfg) == ["TCGA-LUAD"]


def test_cli_manifest_sheet_and_download(
    fake: FakeGDC, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fake.hits = [make_hit(i) for i in range(3)]
    rc = gdc.main(
        [
            "manifest",
            "--project",
            "TCGA-BLCA",
            "--files-endpoint",
            f"{fake.url}/files",
            "--page-size",
            "2",
            "--out",
            "manifest/TCGA-BLCA.tsv",
            "--sheet",
            "slides.tsv",
            "--slide-dir",
            "data/slides",
        ]
    )
    assert rc == 0
    sheet = pd.read_csv("slides.tsv", sep="\t", dtype=str)
    assert list(sheet.columns) == gdc_slides.SHEET_COLUMNS and len(sheet) == 3
    assert (
        gdc.main(
            ["sheet", "--manifest", "manifest/TCGA-BLCA.tsv", "--slide-dir", "d", "--out", "s2.tsv"]
        )
        == 0
    )
    assert len(pd.read_csv("s2.tsv", sep="\t")) == 3
    fid, data, md5 = serve_file(fake)
    argv = ["download", "--file-id", fid, "--out", "one.svs", "--md5", md5, "--backoff", "0.01"]
    assert gdc.main([*argv, "--data-endpoint", f"{fake.url}/data/{{file_id}}"]) == 0
    assert Path("one.svs").read_bytes() == data


# --------------------------------------------------------------------------------------------
# the workflow's download rules against the fake GDC
# --------------------------------------------------------------------------------------------


def _snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run snakemake in `cwd` with this interpreter (output captured)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_workflow_writes_the_sheet_and_downloads_each_slide(fake: FakeGDC, tmp_path: Path) -> None:
    for name in ["Snakefile", "config", "workflow", "scripts", "resources", "profiles", "envs"]:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, tmp_path / name)
    cohorts = ["TCGA-BLCA", "TCGA-LUAD", "TCGA-UCEC"]  # those of config/tcga.yaml
    for k, cohort in enumerate(cohorts):
        fid, data, md5 = serve_file(fake, n_bytes=50_000 + k, seed=k)
        hit = make_hit(k, cohort)
        name = f"{hit['cases'][0]['submitter_id']}-01Z-00-DX1.{fid.upper()}.svs"
        fake.hits.append(
            {**hit, "file_id": fid, "file_name": name, "file_size": len(data), "md5sum": md5}
        )
    fake.plans[fake.hits[0]["file_id"]] = ["cut"]
    fake.plans[fake.hits[1]["file_id"]] = ["500"]
    cfg = {
        "download": {**fake.download_cfg, "slide_dir": "slides", "progress_mb": 0.01, "chunk_kb": 4}
    }
    (tmp_path / "config" / "fake.yaml").write_text(json.dumps(cfg))
    configs = ["--configfile", "config/tcga.yaml", "config/fake.yaml"]
    # step 1 (CLI): the sheet must exist before Snakemake parses the workflow
    manifests = [tmp_path / f"results-tcga/manifest/{c}.tsv" for c in cohorts]
    for cohort, out in zip(cohorts, manifests, strict=True):
        gdc_slides.write_cohort_manifest(cohort, out, download=cfg["download"])
    sheet_path = tmp_path / "resources/tcga/slides.tsv"
    sheet = gdc_slides.write_sheet_from_manifests(manifests, "slides", sheet_path)
    # refreshing through Snakemake queries the GDC again and rewrites the same sheet
    before = sheet_path.read_text()
    run = _snakemake(
        tmp_path, "manifest", *configs, "--cores", "1", "--forcerun", "gdc_slide_manifest"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "results-tcga/logs/gdc_slide_sheet.log").is_file()
    assert sheet_path.read_text() == before
    # step 2: the slides of the sheet (the rest of the DAG needs the omics and survival tables)
    run = _snakemake(tmp_path, *sheet["path"], *configs, "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    for row in sheet.itertuples():
        assert (tmp_path / row.path).read_bytes() == fake.files[row.file_id]
        log_text = (
            tmp_path / f"results-tcga/logs/download/{row.file_id}/{row.slide_id}.log"
        ).read_text()
        assert "md5 verified" in log_text and "(100%)" in log_text
    cut = fake.data_requests(fake.hits[0]["file_id"])
    assert [s.headers.get("Range") for s in cut] == [None, "bytes=24576-"]
