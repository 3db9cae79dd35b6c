"""Overall survival per TCGA case from TCGA-CDR or cBioPortal, unusable cases listed with why.

The survival table also keeps the clinical covariates the source has (age, sex, site, stage;
see `acquire.clinical`), so clinical.tsv carries them for the clinical floor and later models.
"""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

import numpy as np
import pandas as pd

from mmsurv.acquire.clinical import clinical_covariates
from mmsurv.acquire.tcga_io import (
    MISSING_MARKERS,
    TCGAFormatError,
    need_columns,
    read_tsv,
    require_file,
)

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

DAYS_PER_MONTH = 30.44
"""Days per month used to turn TCGA-CDR `OS.time` (days) into months (365.25 / 12 ≈ 30.44)."""


class SurvivalTable(NamedTuple):
    """Survival labels per case, and the cases left out with the reason."""

    table: pd.DataFrame  # index case_id; survival_months float, event bool, covariates
    excluded: pd.DataFrame  # columns case_id, reason


def _finish_survival(
    cases: pd.Series,
    months: pd.Series,
    event: pd.Series,
    path: PathLike,
    covariates: pd.DataFrame | None = None,
) -> SurvivalTable:
    """Drop cases without a usable time or status, listing each with its reason.

    `covariates` (rows aligned with `cases`) are kept as further columns of the table.
    """
    cases = cases.astype(str).str.strip()
    dup = sorted(set(cases[cases.duplicated()]))
    if dup:
        raise TCGAFormatError(f"{path}: case(s) listed more than once: {dup[:20]}")
    reasons = pd.Series("", index=cases.index, dtype=object)
    reasons[months.isna()] = "missing survival time"
    reasons[months < 0] = "negative survival time"
    reasons[(reasons == "") & event.isna()] = "missing or unknown vital status"
    bad = reasons != ""
    excluded = pd.DataFrame({"case_id": cases[bad], "reason": reasons[bad]})
    excluded = excluded.sort_values("case_id").reset_index(drop=True)
    if len(excluded):
        log.warning(
            "%s: %d case(s) excluded from survival: %s",
            path,
            len(excluded),
            excluded.to_dict("records")[:20],
        )
    table = pd.DataFrame(
        {"survival_months": months[~bad].astype(float), "event": event[~bad].astype(bool)}
    )
    if covariates is not None:
        table = pd.concat([table, covariates.loc[~bad]], axis=1)
    table.index = pd.Index(cases[~bad], name="case_id")
    return SurvivalTable(table.sort_index(), excluded)


def cancer_code(cohort: str) -> str:
    """TCGA cancer acronym of a cohort name: 'TCGA-BLCA', 'tcga_blca' and 'BLCA' give 'BLCA'."""
    code = str(cohort).strip().upper()
    for prefix in ("TCGA-", "TCGA_"):
        code = code.removeprefix(prefix)
    return code


def read_tcga_cdr(path: PathLike, *, cancer_type: str | None = None) -> SurvivalTable:
    """Overall survival from the TCGA Pan-Cancer Clinical Data Resource (Liu et al. 2018).

    Reads `TCGA-CDR-SupplementalTableS1` as .xlsx (sheet `TCGA-CDR`, needs openpyxl) or as a
    tab/comma-separated export; uses `bcr_patient_barcode`, `type`, `OS` (1 = death) and `OS.time`
    (days → months by `DAYS_PER_MONTH` = 30.44). `cancer_type` keeps one cancer ('BLCA').
    age_at_initial_pathologic_diagnosis, gender and ajcc_pathologic_tumor_stage are kept as
    age, sex and stage; site comes from the barcode.
    """
    p = require_file(path)
    if p.suffix.lower() == ".xlsx":
        try:
            table = pd.read_excel(
                p, sheet_name="TCGA-CDR", na_values=MISSING_MARKERS, engine="openpyxl"
            )
        except ImportError as err:
            raise ImportError(
                f"{p}: reading .xlsx needs openpyxl; install it or export the `TCGA-CDR` sheet "
                "as TSV"
            ) from err
    else:
        sep = "," if p.suffix.lower() == ".csv" else "\t"
        table = pd.read_csv(
            p, sep=sep, na_values=MISSING_MARKERS, keep_default_na=False, low_memory=False
        )
    need_columns(table, ["bcr_patient_barcode", "type", "OS", "OS.time"], p)
    if cancer_type is not None:
        code = cancer_code(cancer_type)
        table = table[table["type"].astype(str).str.strip().str.upper() == code]
        if table.empty:
            raise TCGAFormatError(f"{p}: no row with type == {code!r}")
    os_flag = pd.to_numeric(table["OS"], errors="coerce")
    event = os_flag.map({0.0: False, 1.0: True})
    days = pd.to_numeric(table["OS.time"], errors="coerce")
    cases = table["bcr_patient_barcode"].astype(str).str.strip()
    covariates = clinical_covariates(table, cases, source=str(p))
    return _finish_survival(cases, days / DAYS_PER_MONTH, event, p, covariates)


def parse_os_status(value: object) -> bool | None:
    """cBioPortal OS_STATUS ('1:DECEASED', '0:LIVING', bare words) → event; None if unknown."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip().upper()
    code, sep, word = text.partition(":")
    if sep and code in ("0", "1"):
        return code == "1"
    return {"DECEASED": True, "DEAD": True, "LIVING": False, "ALIVE": False}.get(text)


def read_cbioportal_survival(path: PathLike) -> SurvivalTable:
    """Overall survival from cBioPortal's `data_clinical_patient.txt`.

    Uses PATIENT_ID, OS_STATUS and OS_MONTHS (already months); the four '#' lines are skipped.
    AGE, SEX and AJCC_PATHOLOGIC_TUMOR_STAGE are kept as age, sex and stage; site comes from
    the barcode.
    """
    p = require_file(path)
    table = read_tsv(p, dtype={"PATIENT_ID": str, "OS_STATUS": str})
    need_columns(table, ["PATIENT_ID", "OS_STATUS", "OS_MONTHS"], p)
    months = pd.to_numeric(table["OS_MONTHS"], errors="coerce")
    event = table["OS_STATUS"].map(parse_os_status)
    cases = table["PATIENT_ID"].astype(str).str.strip()
    covariates = clinical_covariates(table, cases, source=str(p))
    return _finish_survival(cases, months, event, p, covariates)
