"""Clinical covariates kept beside the survival labels: age, sex, site (TSS) and stage.

Each source names them its own way (TCGA-CDR `age_at_initial_pathologic_diagnosis`, `gender`,
`ajcc_pathologic_tumor_stage`; cBioPortal `AGE`, `SEX`, `AJCC_PATHOLOGIC_TUMOR_STAGE`; MCAT
tables `age`, `is_female`, `site`); clinical.tsv holds them as `age` (years, float), `sex`
(`female` / `male`), `site` (the TCGA tissue source site, barcode characters 6-7, e.g. `2F` of
TCGA-2F-A9KO) and `stage` (text as the source writes it), where the source has them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from mmsurv.acquire.tcga_io import MISSING_MARKERS

log = logging.getLogger(__name__)

__all__ = ["CLINICAL_COLUMNS", "clinical_covariates", "normalise_sex", "tss_code"]

CLINICAL_COLUMNS: tuple[str, ...] = ("age", "sex", "site", "stage")
"""The covariate columns acquisition writes into clinical.tsv when the source has them."""

_SOURCES: dict[str, tuple[str, ...]] = {
    # first match wins; compared case-insensitively
    "age": ("age", "age_at_initial_pathologic_diagnosis", "age_at_diagnosis", "diagnosis_age"),
    "sex": ("sex", "gender"),
    "site": ("site", "tissue_source_site"),
    "stage": ("stage", "ajcc_pathologic_tumor_stage", "ajcc_pathologic_stage", "tumor_stage"),
}
_TCGA_CASE = re.compile(r"^TCGA-([A-Z0-9]{2})-[A-Z0-9]{4}")
_SEX = {"female": "female", "f": "female", "male": "male", "m": "male"}
_MISSING = {m.lower() for m in MISSING_MARKERS}


def tss_code(case_id: str) -> str | None:
    """The tissue source site of a TCGA barcode ('TCGA-2F-A9KO' → '2F'); None otherwise."""
    m = _TCGA_CASE.match(str(case_id).strip())
    return m.group(1) if m else None


def normalise_sex(value: object) -> str | float:
    """'female' / 'male' from FEMALE, Female, F, male, M ...; NaN when missing or unknown."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    return _SEX.get(str(value).strip().lower(), np.nan)


def _column(table: pd.DataFrame, names: Iterable[str]) -> str | None:
    """The first column of `table` named like one of `names` (case-insensitive)."""
    by_lower = {str(c).lower(): c for c in table.columns}
    return next((by_lower[n] for n in names if n in by_lower), None)


def _text(values: pd.Series) -> pd.Series:
    """Stripped text with the TCGA missing markers as NaN."""
    out = values.map(lambda v: v if pd.isna(v) else str(v).strip())
    return out.map(lambda v: np.nan if pd.isna(v) or v.lower() in _MISSING else v)


def _sex(table: pd.DataFrame, source: str) -> pd.Series | None:
    """sex from a sex/gender column, else from MCAT's is_female (1 → female, 0 → male)."""
    col = _column(table, _SOURCES["sex"])
    if col is not None:
        raw = _text(table[col])
        sex = raw.map(normalise_sex)
        odd = sorted({str(v) for v in raw[raw.notna() & sex.isna()]})
        if odd:
            log.warning("%s: column %s has values %s that are not female/male; left empty",
                        source, col, odd[:10])  # fmt: skip
        return sex
    col = _column(table, ("is_female",))
    if col is None:
        return None
    flag = pd.to_numeric(table[col], errors="coerce")
    return flag.map({1.0: "female", 0.0: "male"})


def clinical_covariates(table: pd.DataFrame, case_ids: pd.Series, *, source: str) -> pd.DataFrame:
    """age, sex, site and stage of each row of a source table, as far as it has them.

    `case_ids` (aligned with `table`) give the site when the table has no site column and the
    ids are TCGA barcodes. Columns the source lacks are left out, not filled.
    """
    out = pd.DataFrame(index=table.index)
    col = _column(table, _SOURCES["age"])
    if col is not None:
        out["age"] = pd.to_numeric(_text(table[col]), errors="coerce").astype(float)
    sex = _sex(table, source)
    if sex is not None:
        out["sex"] = sex.astype(object)
    col = _column(table, _SOURCES["site"])
    if col is not None:
        out["site"] = _text(table[col]).astype(object)
    else:
        sites = case_ids.map(tss_code)
        if len(sites) and sites.notna().all():
            out["site"] = sites.astype(object)
    col = _column(table, _SOURCES["stage"])
    if col is not None:
        out["stage"] = _text(table[col]).astype(object)
    log.info("%s: clinical covariates kept: %s", source, list(out.columns) or "none")
    return out
