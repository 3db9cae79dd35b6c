"""Encoder weights download: sha256 from config or the torch.hub file name, verified before use."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mmsurv.acquire.transfer import ChecksumError
from mmsurv.features.weights import expected_sha256, fetch_weights

FAST = {"retries": 1, "backoff": 0.01, "max_backoff": 0.02, "timeout": 5.0}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - base signature
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server over a directory (what download.pytorch.org is to a real run)."""
    root = tmp_path / "served"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=root))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    yield f"http://{host}:{port}", root
    httpd.shutdown()
    httpd.server_close()


def _publish(root: Path, content: bytes, name: str | None = None) -> tuple[str, str]:
    """Write `content` under a torch.hub-style name (<stem>-<sha256[:8]>.pth); (name, sha256)."""
    sha = hashlib.sha256(content).hexdigest()
    name = name or f"resnet50-{sha[:8]}.pth"
    (root / name).write_bytes(content)
    return name, sha


def test_sha256_from_config_or_file_name():
    url = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    assert expected_sha256(url, None) == "0676ba61"
    assert expected_sha256(url, "ABCDEF0123") == "abcdef0123"
    with pytest.raises(ValueError, match="weights_sha256"):
        expected_sha256("https://x.org/model.pth", None)
    with pytest.raises(ValueError, match="not 8-64 hex"):
        expected_sha256(url, "xyz")


def test_download_is_verified_and_renamed(server, tmp_path):
    url, root = server
    name, sha = _publish(root, b"weights" * 5000)
    dest = tmp_path / "w" / "resnet50.pth"
    assert fetch_weights(f"{url}/{name}", dest, download=FAST) == dest
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha
    assert not dest.with_name(dest.name + ".download").exists()
    # Present and matching: kept without a request (the server is gone for this call).
    (root / name).unlink()
    assert fetch_weights(f"{url}/{name}", dest, sha256=sha, download=FAST) == dest


def test_wrong_hash_never_lands_under_the_final_name(server, tmp_path):
    url, root = server
    name, _ = _publish(root, b"tampered" * 100, name="resnet50-0676ba61.pth")
    dest = tmp_path / "resnet50.pth"
    with pytest.raises(ChecksumError, match=r"resnet50\.pth.*expected 0676ba61; removed"):
        fetch_weights(f"{url}/{name}", dest, download=FAST)
    assert not dest.exists() and not dest.with_name(dest.name + ".download").exists()


def test_existing_wrong_file_is_an_error_and_left_alone(server, tmp_path):
    url, root = server
    name, sha = _publish(root, b"good" * 100)
    dest = tmp_path / "resnet50.pth"
    dest.write_bytes(b"someone else's file")
    with pytest.raises(ChecksumError, match="left in place"):
        fetch_weights(f"{url}/{name}", dest, sha256=sha, download=FAST)
    assert dest.read_bytes() == b"someone else's file"
