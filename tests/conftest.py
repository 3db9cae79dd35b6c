"""Shared, cheap, session-scoped fixtures: tiny synthetic Aperio slides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmsurv.demo.cohort import DOWNSAMPLES_20X, DOWNSAMPLES_40X, render_tissue
from mmsurv.demo.synth import write_svs


@dataclass(frozen=True)
class SynthSlides:
    """Paths of the synthetic slides and the known tissue of the 40x/20x pair."""

    rgb20: np.ndarray  # the field rendered at 20x (0.5 µm/px)
    mask20: np.ndarray  # its tissue mask (holes removed), 1 = tissue
    s40: Path  # the field scanned at 40x: MPP 0.25, AppMag 40
    s20: Path  # the same field at 20x: MPP 0.5, AppMag 20
    no_mpp: Path  # 40x scan with AppMag but no MPP
    no_meta: Path  # 20x pixels, neither MPP nor AppMag
    white: Path  # all background
    tiny: Path  # 768x512 at 20x: a handful of tiles, for feature extraction


@pytest.fixture(scope="session")
def synth_slides(tmp_path_factory: pytest.TempPathFactory) -> SynthSlides:
    """Write the synthetic slides once per test session (~0.5 s)."""
    d = tmp_path_factory.mktemp("slides")
    rng = np.random.default_rng(11)
    rgb20, mask20 = render_tissue(rng, 0.5, n_blobs=1)
    h, w = rgb20.shape[:2]
    rgb40 = cv2.resize(rgb20, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    paths = {
        k: d / f"{k}.svs" for k in SynthSlides.__dataclass_fields__ if k not in ("rgb20", "mask20")
    }
    write_svs(paths["s40"], rgb40, mpp=0.25, app_mag=40, downsamples=DOWNSAMPLES_40X)
    write_svs(paths["s20"], rgb20, mpp=0.5, app_mag=20, downsamples=DOWNSAMPLES_20X)
    write_svs(paths["no_mpp"], rgb40, mpp=None, app_mag=40, downsamples=DOWNSAMPLES_40X)
    write_svs(paths["no_meta"], rgb20, mpp=None, app_mag=None, downsamples=DOWNSAMPLES_20X)
    white = np.full((768, 1024, 3), 240, np.uint8)
    write_svs(paths["white"], white, mpp=0.5, app_mag=20, downsamples=DOWNSAMPLES_20X)
    tiny, _ = render_tissue(np.random.default_rng(5), 1.0, width=768, height=512, n_blobs=1)
    write_svs(paths["tiny"], tiny, mpp=0.5, app_mag=20, downsamples=(1, 2))
    return SynthSlides(rgb20=rgb20, mask20=mask20, **paths)


_SLURM_IDS = Path(__file__).resolve().parents[1] / "test-artifacts" / "slurm_job_ids.txt"
_slurm_ids_offset = pytest.StashKey[int]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remember where this session's SLURM job ids start in the artifacts file."""
    session.config.stash[_slurm_ids_offset] = (
        _SLURM_IDS.stat().st_size if _SLURM_IDS.exists() else 0
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the SLURM job ids this session submitted, so they stand in the CI log."""
    start = terminalreporter.config.stash.get(_slurm_ids_offset, 0)
    if not _SLURM_IDS.exists():
        return
    with open(_SLURM_IDS) as fh:
        fh.seek(start)
        lines = [line.rstrip() for line in fh if line.strip()]
    if lines:
        terminalreporter.write_sep("-", "SLURM job ids submitted by this session")
        for line in lines:
            terminalreporter.write_line(line)
