"""Finished slides kept under features/.resume until their batch succeeds, so reruns skip them."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mmsurv.features.encoders import Encoder
from mmsurv.features.loader import SlideJob
from mmsurv.io import py_value

__all__ = ["RESUME_DIR", "resume_path"]

log = logging.getLogger(__name__)

RESUME_DIR = ".resume"


def resume_path(out: str | os.PathLike[str]) -> Path:
    """Where a finished slide's features are kept until its whole batch has succeeded.

    Snakemake deletes every output of a failed or killed job; this hard link (a copy on
    filesystems without links) outlives that, so a rerun of the batch encodes only the slides
    that were not finished.
    """
    out = Path(out)
    return out.parent / RESUME_DIR / out.name


def _slide_stamp(slide: str) -> dict[str, int]:
    """Size and modification time of a slide file: a kept output is reused only if they match."""
    st = os.stat(slide)
    return {"slide_bytes": int(st.st_size), "slide_mtime_ns": int(st.st_mtime_ns)}


def _place(src: Path, dst: Path) -> None:
    """Hard-link (or copy) ``src`` to ``dst`` atomically, replacing ``dst``."""
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.tmp"
    for attempt in range(3):  # another batch may remove the empty directory meanwhile
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        try:
            try:
                os.link(src, tmp)
            except FileNotFoundError:
                raise
            except OSError:  # no hard links on this filesystem
                shutil.copy2(src, tmp)
            os.replace(tmp, dst)
            return
        except FileNotFoundError:
            if attempt == 2 or not src.exists():
                raise


def _kept_output_mismatch(job: SlideJob, enc: Encoder, provenance: dict[str, Any]) -> str | None:
    """Why the kept output of ``job`` cannot stand for a new encoding (None: it can)."""
    expected = {
        "encoder": enc.name,
        "weights": enc.weights_id,
        **provenance,
        **_slide_stamp(job.slide),
    }
    try:
        with h5py.File(resume_path(job.out), "r") as f:
            for key, value in expected.items():
                got = py_value(f.attrs.get(key))
                if got != value:
                    return f"{key} is {got!r}, now {value!r}"
            if f["features"].shape != (len(job.coords), enc.dim):
                return f"features {f['features'].shape}, now {(len(job.coords), enc.dim)}"
            if not np.array_equal(f["coords"][()], job.coords.reshape(-1, 2)):
                return "the tile coords differ"
    except (OSError, KeyError) as err:
        return f"unreadable ({err})"
    return None


def _reuse_kept_output(job: SlideJob, enc: Encoder, provenance: dict[str, Any]) -> bool:
    """Put a kept output of an earlier, failed run of this batch in place if it still holds."""
    kept = resume_path(job.out)
    if not kept.exists():
        return False
    why = _kept_output_mismatch(job, enc, provenance)
    if why is not None:
        log.warning("slide %s: not reusing %s (%s); encoding again", job.slide, kept, why)
        kept.unlink()
        return False
    _place(kept, job.out)
    log.info("slide %s: reused %s, finished by an earlier run of this batch", job.slide, kept)
    return True
