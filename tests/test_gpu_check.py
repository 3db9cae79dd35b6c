"""benchmarks/gpu_check.sh stays runnable: its CPU, CI-sized mode writes every part's results."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_in_ci_size(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check"
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks/gpu_check.sh"), "--device", "cpu", "--tiny", "--out", out],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    logs = {p.name: p.read_text()[-2000:] for p in out.glob("*.log")}
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:], logs)
    summary = json.loads((out / "gpu_check.json").read_text())
    assert {n: r["status"] for n, r in summary["parts"].items()} == {
        "nvjpeg": "ok",
        "tiles": "ok",
        "models": "ok",
    }
    # the raw-tile decoder gives openslide's pixels on Aperio-layout tiles
    nv = summary["nvjpeg"]
    assert (
        nv["ok"] and nv["tiles_decoded_raw"] == nv["tiles"] and nv["max_abs_diff_vs_openslide"] <= 1
    )
    assert set(summary["loaders_jpeg20"]) >= {"clam", "ours"}
    assert summary["extraction"]["ratio_end_to_end_vs_forward"] > 0
    assert summary["projection"]["extraction_hours"] > 0
    assert sorted(r["model"] for r in summary["models"] if "error" not in r) == [
        "attn_mil",
        "ours",
        "snn",
    ]
    md = (out / "gpu_check.md").read_text()
    for part in ("JPEG decoding on the device", "Extraction", "BLCA projection", "| ours |"):
        assert part in md
