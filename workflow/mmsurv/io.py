"""Small I/O helpers shared by every stage: atomic writes and per-job logging."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a sheet is read: every job imports this module
    import pandas as pd  # for setup_logging, and pandas costs a tiling job ~0.5 of its 1.2 CPU-s


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`, renamed onto it only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # keep the extension last: writers such as matplotlib pick the format from it
    fd, tmp = tempfile.mkstemp(
        prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file so that readers never see a half-written version."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def py_value(value: object) -> object:
    """An h5py/NumPy attribute or scalar as a plain Python value (bytes decoded)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def json_default(obj: object) -> object:
    """`json.dumps(default=...)` for NumPy scalars and arrays."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def setup_logging(log_path: str | os.PathLike[str] | None, level: int = logging.INFO) -> None:
    """Send logging and stderr of a Snakemake job to its `log:` file (and keep stderr if none)."""
    handlers: list[logging.Handler] = []
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives as long as the job
        sys.stderr = stream
        handlers.append(logging.StreamHandler(stream))
    else:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)


SHEET_DTYPES = {"cohort": str, "case_id": str, "slide_id": str, "path": str}


def empty_slide_sheet() -> pd.DataFrame:
    """A slide sheet without rows, for planning the step that writes the real one."""
    import pandas as pd

    sheet = pd.DataFrame({c: pd.Series(dtype=str) for c in SHEET_DTYPES})
    sheet["mpp"] = pd.Series(dtype=float)
    return sheet.set_index("slide_id", drop=False)


class SheetError(ValueError):
    """A sample sheet that cannot drive the workflow; the message names the file and rows."""


def read_slide_sheet(
    path: str | os.PathLike[str], cohorts: list[str], *, require_slides: bool = True
) -> pd.DataFrame:
    """Read the slide sheet, keep the configured cohorts and check ids are usable as wildcards.

    `require_slides=False` (no configured model uses pathology): an absent or empty sheet gives
    an empty sheet, and a cohort may have no slide.
    """
    import pandas as pd

    if not Path(path).is_file():
        if not require_slides:
            return empty_slide_sheet()
        raise SheetError(
            f"slide sheet {path} does not exist (config key `samples`); it must list the "
            f"slides of cohort(s) {cohorts} for the models that use pathology"
        )
    if Path(path).stat().st_size == 0:
        if not require_slides:
            return empty_slide_sheet()
        raise SheetError(f"slide sheet {path} is an empty file (config key `samples`)")
    sheet = pd.read_csv(path, sep="\t", dtype=SHEET_DTYPES, comment="#")
    missing = [c for c in SHEET_DTYPES if c not in sheet.columns]
    if missing:
        raise SheetError(
            f"slide sheet {path} lacks column(s) {missing}; it has {list(sheet.columns)}"
        )
    if "mpp" not in sheet.columns:
        sheet["mpp"] = float("nan")
    for col in SHEET_DTYPES:
        empty = sheet.index[sheet[col].isna() | (sheet[col].str.strip() == "")]
        if len(empty):
            raise SheetError(
                f"slide sheet {path}: empty `{col}` in row(s) {[int(i) + 2 for i in empty]}"
            )
    dup = sheet.loc[sheet["slide_id"].duplicated(keep=False), "slide_id"].unique()
    if len(dup):
        raise SheetError(f"slide sheet {path}: duplicated slide_id(s) {sorted(dup)[:10]}")
    two_cohorts = sheet.groupby("case_id")["cohort"].nunique()
    if (two_cohorts > 1).any():
        bad = sorted(two_cohorts.index[two_cohorts > 1])[:10]
        raise SheetError(f"slide sheet {path}: case(s) {bad} appear in more than one cohort")
    absent = [c for c in cohorts if c not in set(sheet["cohort"])]
    if absent and require_slides:
        raise SheetError(
            f"slide sheet {path} has no slide for configured cohort(s) {absent}; "
            f"its cohorts are {sorted(set(sheet['cohort']))} (models that use pathology need "
            "slides of every cohort)"
        )
    sheet = sheet[sheet["cohort"].isin(cohorts)]
    return sheet.set_index("slide_id", drop=False).sort_index()
