"""cBioPortal PanCanAtlas studies: archive URL, safe unpacking, RSEM/CNA matrix and MAF parsers."""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import tarfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from mmsurv.acquire.barcodes import DEFAULT_SAMPLE_TYPES, SAMPLE_BARCODE_RE, choose_samples
from mmsurv.acquire.retry import redact_url
from mmsurv.acquire.tcga_io import (
    TCGAFormatError,
    dedup_genes,
    need_columns,
    numeric_frame,
    read_tsv,
    require_file,
)
from mmsurv.io import atomic_path

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

NONSILENT_CLASSES: frozenset[str] = frozenset(
    {
        "Frame_Shift_Del",
        "Frame_Shift_Ins",
        "In_Frame_Del",
        "In_Frame_Ins",
        "Missense_Mutation",
        "Nonsense_Mutation",
        "Nonstop_Mutation",
        "Splice_Site",
        "Translation_Start_Site",
    }
)
"""MAF `Variant_Classification` values that count as a mutation of the gene (`<GENE>_mut` = 1)."""

_CBIO_ANNOTATION_COLUMNS = ("Hugo_Symbol", "Entrez_Gene_Id", "Cytoband")


# --------------------------------------------------------------------------- study archives
CBIOPORTAL_FILES: dict[str, str] = {
    "rnaseq": "data_mrna_seq_v2_rsem.txt",
    "cnv": "data_cna.txt",
    "clinical": "data_clinical_patient.txt",
    "mut": "data_mutations.txt",
    "case_list": "case_lists/cases_sequenced.txt",
}
"""Files the workflow takes from a cBioPortal PanCanAtlas study archive, by role."""


def cbioportal_files(*, mutations: bool) -> dict[str, str]:
    """Archive members needed: RSEM, CNA, patient clinical (+ the MAF and its case list)."""
    wanted = ("rnaseq", "cnv", "clinical", *(("mut", "case_list") if mutations else ()))
    return {key: CBIOPORTAL_FILES[key] for key in wanted}


def study_archive_url(template: str, study: str) -> str:
    """The archive URL of a cBioPortal study from the `{study}` URL template."""
    if "{study}" not in template:
        raise ValueError(
            f"acquisition.omics.archive_url {redact_url(template)!r} must contain the "
            "placeholder {study}"
        )
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", study):
        raise ValueError(f"cBioPortal study id {study!r} must match [A-Za-z0-9_.-]+")
    return template.replace("{study}", study)


def _member_parts(name: str) -> list[str] | None:
    """Components of an archive member name without `.`; None if absolute or with `..`."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        return None
    return parts


def _member_relpath(parts: Sequence[str], study: str) -> str:
    """Path of an archive member inside the study folder (`study/x`, `./study/x` or `x`)."""
    if parts[0] == study and len(parts) > 1:
        parts = parts[1:]
    return "/".join(parts)


def _copy_members(
    tar: tarfile.TarFile,
    wanted: Mapping[str, str],
    outputs: Mapping[str, PathLike],
    *,
    study: str,
    where: str,
    done: dict[str, Path],
    tops: set[str],
) -> None:
    """Stream the archive once, copying each wanted regular-file member to its output path."""
    for member in tar:
        parts = _member_parts(member.name)
        if parts is None:  # never matched, so never written anywhere
            log.warning("%s: ignored unsafe member name %r", where, member.name)
            continue
        tops.add(parts[0])
        rel = _member_relpath(parts, study)
        if rel not in wanted:
            continue
        role = wanted[rel]
        if role in done:
            raise TCGAFormatError(f"{where}: {rel} appears more than once")
        if not member.isfile():
            raise TCGAFormatError(
                f"{where}: {rel} is not a regular file (link or special member); refusing it"
            )
        src = tar.extractfile(member)
        if src is None:  # pragma: no cover - isfile() members always have data
            raise TCGAFormatError(f"{where}: cannot read {rel}")
        with src, atomic_path(outputs[role]) as tmp, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        done[role] = Path(outputs[role])
        log.info("%s: extracted %s (%d bytes) -> %s", where, rel, member.size, done[role])


def unpack_cbioportal_study(
    archive: PathLike, outputs: Mapping[str, PathLike], *, study: str
) -> dict[str, Path]:
    """Extract only the wanted members of a study archive to the given paths (role → path).

    `outputs` keys are roles of CBIOPORTAL_FILES. Members are matched by their path inside the
    study folder (`study/...`, `./study/...` or at the top) and copied to the caller's paths, so
    member names never choose where bytes land; absolute or `..` names are skipped, links and
    other non-regular members refused. On any error the files already written are removed.
    """
    unknown = [k for k in outputs if k not in CBIOPORTAL_FILES]
    if unknown:
        raise ValueError(f"unknown cBioPortal file role(s) {unknown}; known: {CBIOPORTAL_FILES}")
    p = require_file(archive)
    where = f"{p} (study {study})"
    wanted = {CBIOPORTAL_FILES[k]: k for k in outputs}
    done: dict[str, Path] = {}
    tops: set[str] = set()
    try:
        try:
            with tarfile.open(p, mode="r|*") as tar:
                _copy_members(tar, wanted, outputs, study=study, where=where, done=done, tops=tops)
        except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise TCGAFormatError(f"{where}: not a readable tar archive: {err}") from err
        missing = [CBIOPORTAL_FILES[k] for k in outputs if k not in done]
        if missing:
            raise TCGAFormatError(
                f"{where}: missing {missing}; its top-level entries are {sorted(tops)[:10]} "
                "(is acquisition.omics.studies right for this cohort?)"
            )
    except BaseException:
        for path in done.values():
            path.unlink(missing_ok=True)
        raise
    return done


# --------------------------------------------------------------------------- parsers
def _cases_by_genes(
    gene_by_sample: pd.DataFrame, chosen: Mapping[str, str], path: PathLike
) -> pd.DataFrame:
    """Keep the chosen sample columns, rename them to case ids and transpose to case × gene."""
    out = gene_by_sample[list(chosen)].rename(columns=dict(chosen)).T.sort_index()
    out.index.name = "case_id"
    out.columns.name = None
    out.attrs["sample_of_case"] = {case: sample for sample, case in chosen.items()}
    out.attrs["source"] = str(path)
    return out


def read_cbioportal_matrix(
    path: PathLike, *, sample_types: Sequence[str] = DEFAULT_SAMPLE_TYPES
) -> pd.DataFrame:
    """Read a cBioPortal gene × sample matrix (RSEM or GISTIC CNA) as a case × gene table.

    `data_mrna_seq_v2_rsem.txt` and `data_cna.txt` both have `Hugo_Symbol`, `Entrez_Gene_Id`, then
    one column per sample barcode (TCGA-XX-XXXX-01). One sample per case is kept
    (`choose_samples`); rows without a symbol are dropped, a repeated symbol keeps its first row.
    """
    p = require_file(path)
    table = read_tsv(p, dtype={"Hugo_Symbol": str})
    need_columns(table, ["Hugo_Symbol"], p)
    sample_cols = [c for c in table.columns if c not in _CBIO_ANNOTATION_COLUMNS]
    bad = [c for c in sample_cols if SAMPLE_BARCODE_RE.match(str(c)) is None]
    if bad:
        raise TCGAFormatError(f"{p}: column(s) {bad[:10]} are not TCGA sample barcodes")
    if not sample_cols:
        raise TCGAFormatError(f"{p}: no sample columns after {list(_CBIO_ANNOTATION_COLUMNS)}")
    genes = table.set_index("Hugo_Symbol")[sample_cols]
    genes = numeric_frame(dedup_genes(genes, p), p)
    chosen = choose_samples(sample_cols, sample_types=sample_types, source=str(p))
    return _cases_by_genes(genes, chosen, p)


def read_cbioportal_case_list(path: PathLike) -> list[str]:
    """Sample ids of a cBioPortal case list (`case_lists/cases_sequenced.txt`, `case_list_ids:`)."""
    p = require_file(path)
    for line in p.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "case_list_ids":
            ids = [s.strip() for s in re.split(r"[\t ]+", value.strip()) if s.strip()]
            if not ids:
                raise TCGAFormatError(f"{p}: `case_list_ids` is empty")
            return ids
    raise TCGAFormatError(f"{p}: no `case_list_ids:` line")


def read_maf(
    path: PathLike,
    *,
    sample_types: Sequence[str] = DEFAULT_SAMPLE_TYPES,
    variant_classes: Iterable[str] = NONSILENT_CLASSES,
    profiled_samples: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Read a MAF (`data_mutations.txt`) as a 0/1 case × gene table of non-silent mutations.

    A case is known (row of zeros if it has no counted mutation) when its sample is in
    `profiled_samples` (e.g. `read_cbioportal_case_list('case_lists/cases_sequenced.txt')`) or
    has any MAF row at all; other cases are absent, so they count as "no mutation data".
    """
    p = require_file(path)
    cols = ["Hugo_Symbol", "Tumor_Sample_Barcode", "Variant_Classification"]
    table = read_tsv(p, dtype=str, usecols=lambda c: c in cols)
    need_columns(table, cols, p)
    table = table.dropna(subset=["Tumor_Sample_Barcode"])
    samples = set(table["Tumor_Sample_Barcode"].str.strip())
    if profiled_samples is not None:
        samples |= {str(s).strip() for s in profiled_samples}
    bad = sorted(s for s in samples if SAMPLE_BARCODE_RE.match(s) is None)
    if bad:
        raise TCGAFormatError(f"{p}: Tumor_Sample_Barcode values {bad[:10]} are not TCGA barcodes")
    chosen = choose_samples(samples, sample_types=sample_types, source=str(p))
    classes = set(variant_classes)
    hits = table[
        table["Variant_Classification"].isin(classes)
        & table["Tumor_Sample_Barcode"].str.strip().isin(chosen)
        & table["Hugo_Symbol"].notna()
    ]
    hits = hits.assign(case_id=hits["Tumor_Sample_Barcode"].str.strip().map(chosen))
    genes = sorted(set(table["Hugo_Symbol"].dropna().str.strip()) - {""})
    cases = sorted(set(chosen.values()))
    out = pd.DataFrame(0.0, index=pd.Index(cases, name="case_id"), columns=genes)
    for case, gene in set(zip(hits["case_id"], hits["Hugo_Symbol"].str.strip(), strict=True)):
        out.at[case, gene] = 1.0
    out.attrs["sample_of_case"] = {case: sample for sample, case in chosen.items()}
    out.attrs["source"] = str(p)
    log.info(
        "%s: %d cases, %d genes, %d counted mutations (%s)",
        p,
        len(out),
        len(genes),
        len(hits),
        sorted(classes),
    )
    return out
