"""GDC omics files (STAR counts, gene-level copy number) per sample: list, download, parse."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from mmsurv.acquire.barcodes import DEFAULT_SAMPLE_TYPES, choose_samples, parse_sample_barcode
from mmsurv.acquire.gdc_api import (
    ManifestError,
    and_filter,
    checked_file,
    cohort_projects,
    data_url,
    in_filter,
    query_hits,
    query_settings,
    slide_path,
)
from mmsurv.acquire.retry import redact_url
from mmsurv.acquire.tcga_io import dedup_genes, need_columns, numeric_frame, read_tsv, require_file
from mmsurv.acquire.transfer import (
    DEFAULT_FILES_ENDPOINT,
    MIB,
    DownloadError,
    download_file,
    download_settings,
    http_session,
    transfer_options,
)
from mmsurv.io import atomic_path

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

OMICS_MODALITIES: tuple[str, ...] = ("rnaseq", "cnv")
"""Modalities listed, downloaded and parsed from the GDC (acquisition.omics.source gdc)."""

OMICS_DEFAULTS: dict[str, Any] = {
    "dir": "data/tcga/omics",
    "access": "open",
    "rnaseq": {
        "data_category": "Transcriptome Profiling",
        "data_type": "Gene Expression Quantification",
        "workflow_type": "STAR - Counts",
        "value": "tpm_unstranded",
    },
    "cnv": {
        "data_category": "Copy Number Variation",
        "data_type": "Gene Level Copy Number",
        "workflow_type": "ASCAT3",
        "value": "copy_number",
    },
}
"""The `acquisition.omics.gdc` config block's defaults (filter values and the value column)."""

OMICS_MANIFEST_COLUMNS = [
    "cohort",
    "project_id",
    "modality",
    "case_id",
    "sample_id",
    "aliquot_id",
    "file_id",
    "file_name",
    "file_size",
    "md5sum",
]
"""One row per GDC omics file; `sample_id`/`aliquot_id` are TCGA barcodes (aliquot may be empty)."""

OMICS_FILE_TABLE_COLUMNS = [*OMICS_MANIFEST_COLUMNS, "path"]
"""The downloaded-files table of one cohort and modality: manifest rows plus the local path."""

OMICS_FIELDS = [
    "file_id",
    "file_name",
    "file_size",
    "md5sum",
    "data_category",
    "data_type",
    "analysis.workflow_type",
    "access",
    "cases.submitter_id",
    "cases.project.project_id",
    "cases.samples.submitter_id",
    "cases.samples.portions.analytes.aliquots.submitter_id",
]
"""Fields requested for omics files (GDC field names; nested samples are those of the file)."""


def omics_settings(gdc_omics: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `acquisition.omics.gdc` block over OMICS_DEFAULTS (per-modality keys merged too)."""
    given = dict(gdc_omics or {})
    unknown = [k for k in given if k not in OMICS_DEFAULTS]
    if unknown:
        raise ValueError(
            f"acquisition.omics.gdc: unknown key(s) {unknown}; known: {sorted(OMICS_DEFAULTS)}"
        )
    out = {**OMICS_DEFAULTS, **given}
    for modality in OMICS_MODALITIES:
        out[modality] = {**OMICS_DEFAULTS[modality], **(given.get(modality) or {})}
    return out


def omics_filters(
    project_ids: Sequence[str],
    *,
    data_category: str,
    data_type: str,
    workflow_type: str,
    access: str = "open",
) -> dict[str, Any]:
    """GDC filter JSON: one modality's per-sample files (category, type, workflow) of projects."""

    return and_filter(
        [
            in_filter("cases.project.project_id", project_ids),
            in_filter("files.data_category", [data_category]),
            in_filter("files.data_type", [data_type]),
            in_filter("files.analysis.workflow_type", [workflow_type]),
            in_filter("files.access", [access]),
        ]
    )


def _sample_type(barcode: str) -> int:
    """The 2-digit sample-type code of a TCGA sample barcode (01 tumour ... 10-19 normal)."""
    return int(parse_sample_barcode(barcode)[1])


def _omics_hit_to_row(
    hit: Mapping[str, Any], project_ids: Sequence[str], modality: str
) -> dict[str, Any]:
    """One omics file hit as a manifest row: its case, its (tumour) sample and aliquot barcodes.

    A gene-level copy-number file is linked to the tumour and the matched normal sample; the
    tumour (type code < 10) is the file's sample. Errors name the file and its samples.
    """
    row, case = checked_file(hit, project_ids)
    where = f"GDC {modality} file {row['file_id']} ({row['file_name']}, case {row['case_id']})"
    samples = [s for s in case.get("samples") or [] if s.get("submitter_id")]
    if not samples:
        raise ManifestError(f"{where}: hit has no `cases.samples.submitter_id`")
    barcodes = [str(s["submitter_id"]) for s in samples]
    try:
        codes = [_sample_type(b) for b in barcodes]
    except ValueError as err:
        raise ManifestError(f"{where}: {err}") from err
    foreign = [b for b in barcodes if not b.startswith(row["case_id"] + "-")]
    if foreign:
        raise ManifestError(f"{where}: sample(s) {foreign} are not of case {row['case_id']}")
    if len(samples) > 1:
        samples = [s for s, code in zip(samples, codes, strict=True) if code < 10]
        if len(samples) != 1:
            raise ManifestError(
                f"{where}: linked to samples {barcodes}; expected exactly one tumour sample "
                "(type code 01-09)"
            )
    sample = samples[0]
    aliquots = [
        str(a["submitter_id"])
        for portion in sample.get("portions") or []
        for analyte in portion.get("analytes") or []
        for a in analyte.get("aliquots") or []
        if a.get("submitter_id")
    ]
    return {
        **row,
        "modality": modality,
        "sample_id": str(sample["submitter_id"]),
        "aliquot_id": aliquots[0] if len(set(aliquots)) == 1 else "",
    }


def _barcode_key(manifest: pd.DataFrame) -> pd.Series:
    """The barcode that keys each file for `choose_samples`: the aliquot, else the sample."""
    aliquot = manifest["aliquot_id"].fillna("").astype(str)
    return aliquot.where(aliquot != "", manifest["sample_id"].astype(str))


def _drop_repeated_barcodes(manifest: pd.DataFrame, what: str) -> pd.DataFrame:
    """Keep one file per (modality, barcode): the smallest file id, the others logged."""
    keyed = manifest.assign(barcode=_barcode_key(manifest)).sort_values(
        ["modality", "barcode", "file_id"]
    )
    repeated = keyed.duplicated(["modality", "barcode"], keep="first")
    for modality, barcode in sorted(
        set(zip(keyed.loc[repeated, "modality"], keyed.loc[repeated, "barcode"], strict=True))
    ):
        same = keyed[(keyed["modality"] == modality) & (keyed["barcode"] == barcode)]
        log.warning(
            "%s: %s %s has several files %s; using %s",
            what,
            modality,
            barcode,
            list(same["file_id"]),
            same["file_id"].iloc[0],
        )
    return keyed[~repeated].drop(columns="barcode")


def query_omics_manifest(
    project_ids: Sequence[str],
    *,
    cohort: str,
    omics: Mapping[str, Any] | None = None,
    modalities: Sequence[str] = OMICS_MODALITIES,
    files_endpoint: str = DEFAULT_FILES_ENDPOINT,
    page_size: int = 500,
    timeout: float = 60.0,
    retries: int = 5,
    backoff: float = 2.0,
    max_backoff: float = 120.0,
    session: requests.Session | None = None,
) -> pd.DataFrame:
    """List the per-sample omics files of projects (OMICS_MANIFEST_COLUMNS), one query each.

    `omics` is the `acquisition.omics.gdc` block (filter values per modality, `access`). Every
    project needs at least one file per modality (a misspelt project or workflow type fails here).
    Rows are sorted by modality, case and sample barcode.
    """
    project_ids = list(project_ids)
    if not project_ids:
        raise ValueError("query_omics_manifest needs at least one project id")
    s = omics_settings(omics)
    frames = []
    for modality in modalities:
        if modality not in OMICS_MODALITIES:
            raise ValueError(f"unknown GDC omics modality {modality!r}; known: {OMICS_MODALITIES}")
        m = s[modality]
        what = (
            f"GDC {modality} listing of {', '.join(project_ids)} ({m['data_type']}, "
            f"{m['workflow_type']}; {redact_url(files_endpoint)})"
        )
        filters = omics_filters(
            project_ids,
            data_category=m["data_category"],
            data_type=m["data_type"],
            workflow_type=m["workflow_type"],
            access=s["access"],
        )
        hits = query_hits(
            filters,
            OMICS_FIELDS,
            what=what,
            files_endpoint=files_endpoint,
            page_size=page_size,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            session=session,
        )
        rows = [_omics_hit_to_row(h, project_ids, modality) for h in hits]
        frame = pd.DataFrame(rows, columns=[c for c in OMICS_MANIFEST_COLUMNS if c != "cohort"])
        missing = [p for p in project_ids if p not in set(frame["project_id"])]
        if missing:
            raise ManifestError(
                f"{what}: no {s['access']} file for project(s) {missing}; check the project ids "
                f"and acquisition.omics.gdc.{modality} (data_category, data_type, workflow_type)"
            )
        frames.append(_drop_repeated_barcodes(frame, what))
    manifest = pd.concat(frames, ignore_index=True)
    manifest.insert(0, "cohort", cohort)
    _check_omics_manifest(manifest, f"GDC omics listing of {cohort}")
    return manifest.sort_values(["modality", "case_id", "sample_id", "file_id"]).reset_index(
        drop=True
    )


def _check_omics_manifest(manifest: pd.DataFrame, source: str) -> None:
    """A file listed twice, or an unknown modality, makes the manifest ambiguous: refuse it."""
    dup = manifest.loc[manifest["file_id"].duplicated(keep=False), "file_id"].unique()
    if len(dup):
        raise ManifestError(f"{source}: duplicated file_id(s) {sorted(dup)[:10]}")
    bad = sorted(set(manifest["modality"]) - set(OMICS_MODALITIES))
    if bad:
        raise ManifestError(f"{source}: unknown modality value(s) {bad}")


def write_omics_manifest(manifest: pd.DataFrame, path: PathLike) -> None:
    """Write an omics manifest TSV atomically."""
    with atomic_path(path) as tmp:
        manifest[OMICS_MANIFEST_COLUMNS].to_csv(tmp, sep="\t", index=False)


def read_omics_manifest(
    path: PathLike, columns: Sequence[str] = OMICS_MANIFEST_COLUMNS
) -> pd.DataFrame:
    """Read an omics manifest (or downloaded-files table) TSV, checking its columns."""
    if not Path(path).is_file():
        raise ManifestError(f"omics manifest {path} does not exist")
    dtypes = {c: str for c in columns if c != "file_size"}
    manifest = pd.read_csv(path, sep="\t", dtype=dtypes, keep_default_na=False, na_values=[""])
    missing = [c for c in columns if c not in manifest.columns]
    if missing:
        raise ManifestError(f"omics manifest {path} lacks column(s) {missing}")
    _check_omics_manifest(manifest, f"omics manifest {path}")
    return manifest


def write_cohort_omics_manifest(
    cohort: str,
    out: PathLike,
    *,
    download: Mapping[str, Any] | None = None,
    omics: Mapping[str, Any] | None = None,
    project_ids: Sequence[str] | None = None,
    session: requests.Session | None = None,
) -> pd.DataFrame:
    """Query a cohort's omics files with the `download` and `acquisition.omics.gdc` blocks."""
    projects = list(project_ids) if project_ids else cohort_projects(cohort, download)
    manifest = query_omics_manifest(
        projects,
        cohort=cohort,
        omics=omics,
        session=session,
        **query_settings(download),
    )
    write_omics_manifest(manifest, out)
    for modality, part in manifest.groupby("modality"):
        log.info(
            "%s %s: %d files of %d cases, %.1f MiB -> %s",
            cohort,
            modality,
            len(part),
            part["case_id"].nunique(),
            part["file_size"].sum() / MIB,
            out,
        )
    return manifest


def fetch_omics_files(
    manifest: PathLike,
    modality: str,
    out: PathLike,
    *,
    omics_dir: PathLike,
    download: Mapping[str, Any] | None = None,
    session: requests.Session | None = None,
) -> pd.DataFrame:
    """Download one modality's files of an omics manifest and write the downloaded-files table.

    Files land in `{omics_dir}/{file_id}/{file_name}` (gdc-client layout) through
    `download_file`: resumed, retried, size- and md5-checked. A file already there is md5-checked
    and kept when it matches (these files are small). Every file is tried; failures are raised
    together at the end, naming each file, and the table is written only when all succeeded.
    """
    if modality not in OMICS_MODALITIES:
        raise ValueError(f"unknown GDC omics modality {modality!r}; known: {OMICS_MODALITIES}")
    s = download_settings(download)
    rows = read_omics_manifest(manifest)
    rows = rows[rows["modality"] == modality].reset_index(drop=True)
    if rows.empty:
        raise ManifestError(f"omics manifest {manifest}: no {modality} file")
    http = http_session(session)
    paths, failed = [], []
    for row in rows.itertuples(index=False):
        dest = slide_path(omics_dir, row.file_id, row.file_name)
        label = f"{modality} of {row.sample_id} (GDC file {row.file_id})"
        try:
            download_file(
                data_url(s["data_endpoint"], row.file_id),
                dest,
                md5=row.md5sum,
                size=int(row.file_size),
                **transfer_options(s),
                verify_existing=True,
                label=label,
                session=http,
            )
        except DownloadError as err:
            log.error("%s", err)
            failed.append(str(err))
        paths.append(dest)
    if failed:
        raise DownloadError(
            f"{len(failed)} of {len(rows)} {modality} file(s) of {manifest} failed: "
            + "; ".join(failed[:10])
        )
    table = rows.assign(path=paths)[OMICS_FILE_TABLE_COLUMNS]
    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    log.info("%s: %d %s files in %s, listed in %s", manifest, len(table), modality, omics_dir, out)
    return table


def read_omics_file_table(path: PathLike, modality: str) -> dict[str, str]:
    """{barcode: local path} of a downloaded-files table, for the GDC parsers below.

    The barcode is the aliquot's where the GDC gave one, else the sample's; both start with the
    case barcode, so `choose_samples` keeps one file per case by sample type.
    """
    table = read_omics_manifest(path, OMICS_FILE_TABLE_COLUMNS)
    other = sorted(set(table["modality"]) - {modality})
    if other:
        raise ManifestError(f"omics file table {path}: expected only {modality!r}, got {other}")
    if table.empty:
        raise ManifestError(f"omics file table {path}: no {modality} file")
    keys = _barcode_key(table)
    dup = sorted(set(keys[keys.duplicated()]))
    if dup:
        raise ManifestError(f"omics file table {path}: barcode(s) {dup[:10]} have several files")
    return dict(zip(keys, table["path"].astype(str), strict=True))


# --------------------------------------------------------------------------------------------
# parsers of the downloaded files
# --------------------------------------------------------------------------------------------


def _read_gdc_gene_files(
    files: Mapping[str, PathLike],
    *,
    value: str,
    required: Sequence[str],
    sample_types: Sequence[str],
    kind: str,
) -> pd.DataFrame:
    """Shared reader of per-sample GDC gene tables keyed by sample/aliquot barcode."""
    if not files:
        raise ValueError(f"no GDC {kind} files given")
    chosen = choose_samples(files, sample_types=sample_types, source=f"GDC {kind}")
    columns: dict[str, pd.Series] = {}
    for sample, case in chosen.items():
        p = require_file(files[sample])
        table = read_tsv(p, dtype={"gene_id": str, "gene_name": str})
        need_columns(table, [*required, value], p)
        table = table[~table["gene_id"].str.startswith("N_", na=False)]  # STAR summary rows
        table = table[~table["gene_id"].str.endswith("_PAR_Y", na=False)]  # chrY twins
        genes = dedup_genes(table.set_index("gene_name")[[value]], p)
        columns[case] = numeric_frame(genes, p)[value]
    out = pd.DataFrame(columns).T.sort_index()
    out.index.name = "case_id"
    out.attrs["sample_of_case"] = {case: sample for sample, case in chosen.items()}
    out.attrs["source"] = f"GDC {kind} ({value})"
    return out


def read_gdc_star_counts(
    files: Mapping[str, PathLike],
    *,
    value: str = "tpm_unstranded",
    sample_types: Sequence[str] = DEFAULT_SAMPLE_TYPES,
) -> pd.DataFrame:
    """Read GDC STAR-counts TSVs ({sample barcode: path}) into a case × gene table of `value`.

    Each file has a `# gene-model` line, then `gene_id, gene_name, gene_type, unstranded, ...,
    tpm_unstranded, fpkm_unstranded, fpkm_uq_unstranded`; the `N_*` summary rows and `_PAR_Y`
    duplicates are dropped. `value` names the column to keep.
    """
    return _read_gdc_gene_files(
        files,
        value=value,
        required=["gene_id", "gene_name", "gene_type"],
        sample_types=sample_types,
        kind="STAR counts",
    )


def read_gdc_gene_cnv(
    files: Mapping[str, PathLike],
    *,
    value: str = "copy_number",
    sample_types: Sequence[str] = DEFAULT_SAMPLE_TYPES,
) -> pd.DataFrame:
    """Read GDC gene-level copy-number TSVs ({sample barcode: path}) into a case × gene table.

    Columns: `gene_id, gene_name, chromosome, start, end, copy_number, min_copy_number,
    max_copy_number`; `value` is absolute copy number (transform it with `transforms`).
    """
    return _read_gdc_gene_files(
        files,
        value=value,
        required=["gene_id", "gene_name", "chromosome", "start", "end"],
        sample_types=sample_types,
        kind="gene-level copy number",
    )
