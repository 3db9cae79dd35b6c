"""Shared bits of the benchmark scripts: the run's provenance and writing <stem>.json + .md."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def run_meta(script: str, argv: list[str] | None, **extra: Any) -> dict[str, Any]:
    """Command line, date and machine of a benchmark run, plus any extra fields."""
    return {
        "command": " ".join([f"python benchmarks/{script}", *(argv or sys.argv[1:])]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        **extra,
    }


def write_json_md(stem: str, payload: dict[str, Any], md_lines: list[str]) -> Path:
    """Write results/<stem>.json (the payload) and results/<stem>.md; return the .md path."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    md = RESULTS / f"{stem}.md"
    md.write_text("\n".join(md_lines) + "\n")
    return md
