"""TCGA omics and survival: cBioPortal, GDC and TCGA-CDR parsers, and cohort harmonisation.

Every parser returns a table indexed by the 12-character TCGA case barcode (`case_id`); omics
tables record the sample used for each case in `.attrs["sample_of_case"]`. Labels follow the
package convention: `event` bool (True = death observed) and `survival_months`.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import tarfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from mmsurv.genes import MODALITIES
from mmsurv.io import atomic_path

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

DAYS_PER_MONTH = 30.44
"""Days per month used to turn TCGA-CDR `OS.time` (days) into months (365.25 / 12 ≈ 30.44)."""

PAPER_CASES: dict[str, int] = {"BLCA": 371, "LUAD": 450, "UCEC": 475}
"""Cases per cancer in Zhang et al. 2025 (docs: /work/shared/paper/SPEC.md, section Data)."""

DEFAULT_SAMPLE_TYPES: tuple[str, ...] = ("01",)
"""TCGA sample-type codes kept by default, in order of preference (01 = primary solid tumour)."""

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

MISSING_MARKERS: list[str] = [
    "",
    "NA",
    "N/A",
    "NaN",
    "nan",
    "#N/A",
    "[Not Available]",
    "[Not Applicable]",
    "[Not Evaluated]",
    "[Unknown]",
    "[Discrepancy]",
]
"""Cell values read as missing in cBioPortal, GDC and TCGA-CDR tables."""

_SAMPLE_RE = re.compile(r"^(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4})-(\d{2})([A-Z]?)(?:-[A-Z0-9-]+)?$")
_CBIO_ANNOTATION_COLUMNS = ("Hugo_Symbol", "Entrez_Gene_Id", "Cytoband")


class TCGAFormatError(ValueError):
    """An input file that does not have the expected layout; the message names file and field."""


# --------------------------------------------------------------------------- barcodes
def parse_sample_barcode(barcode: str) -> tuple[str, str]:
    """Split a TCGA sample/aliquot barcode into (12-char case barcode, 2-digit sample type)."""
    m = _SAMPLE_RE.match(str(barcode).strip())
    if m is None:
        raise ValueError(
            f"not a TCGA sample barcode: {barcode!r} (expected TCGA-XX-XXXX-NN[V][-...])"
        )
    return m.group(1), m.group(2)


def choose_samples(
    sample_ids: Iterable[str],
    *,
    sample_types: Sequence[str] = DEFAULT_SAMPLE_TYPES,
    source: str = "",
) -> dict[str, str]:
    """Pick one sample per case: first allowed type in `sample_types` order, then smallest barcode.

    Returns {sample_id: case_id} for the chosen samples only; cases with several candidate samples
    and samples of other types are logged, so the choice is deterministic and visible.
    """
    if not sample_types:
        raise ValueError("sample_types must list at least one TCGA sample-type code, e.g. ['01']")
    rank = {t: i for i, t in enumerate(sample_types)}
    by_case: dict[str, list[tuple[int, str]]] = {}
    skipped: list[str] = []
    for sample in sample_ids:
        case, stype = parse_sample_barcode(sample)
        if stype not in rank:
            skipped.append(sample)
            continue
        by_case.setdefault(case, []).append((rank[stype], sample))
    if skipped:
        log.info(
            "%s: ignored %d sample(s) of types not in %s: %s",
            source,
            len(skipped),
            list(sample_types),
            sorted(skipped)[:20],
        )
    chosen: dict[str, str] = {}
    for case, candidates in sorted(by_case.items()):
        candidates.sort()
        pick = candidates[0][1]
        if len(candidates) > 1:
            log.warning(
                "%s: case %s has %d samples %s; using %s (sample-type preference %s, then "
                "smallest barcode)",
                source,
                case,
                len(candidates),
                [s for _, s in candidates],
                pick,
                list(sample_types),
            )
        chosen[pick] = case
    return chosen


# --------------------------------------------------------------------------- file helpers
def _require_file(path: PathLike) -> Path:
    """The path as a Path, or FileNotFoundError naming it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"input file not found: {p}")
    return p


def _n_hash_lines(path: Path) -> int:
    """Number of leading lines starting with '#' (cBioPortal headers, MAF version, GDC model)."""
    n = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            n += 1
    return n


def _read_tsv(path: Path, **kwargs: object) -> pd.DataFrame:
    """Read a tab-separated file after its leading '#' lines, with TCGA missing markers as NaN."""
    return pd.read_csv(
        path,
        sep="\t",
        skiprows=_n_hash_lines(path),
        na_values=MISSING_MARKERS,
        keep_default_na=False,
        low_memory=False,
        **kwargs,  # type: ignore[arg-type]
    )


def _need_columns(table: pd.DataFrame, columns: Sequence[str], path: PathLike) -> None:
    """Raise TCGAFormatError naming the file and the columns it lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise TCGAFormatError(
            f"{path}: missing column(s) {missing}; it has {list(table.columns)[:15]}"
        )


def _numeric_frame(table: pd.DataFrame, path: PathLike) -> pd.DataFrame:
    """The table as float64, or TCGAFormatError naming the first non-numeric column and value."""
    out = table.apply(pd.to_numeric, errors="coerce")
    bad = out.isna() & table.notna()
    if bad.to_numpy().any():
        col = bad.any(axis=0).idxmax()
        row = bad[col].idxmax()
        raise TCGAFormatError(
            f"{path}: non-numeric value {table.at[row, col]!r} in column {col!r} (row {row!r})"
        )
    return out.astype(np.float64)


def _dedup_genes(table: pd.DataFrame, path: PathLike) -> pd.DataFrame:
    """Drop rows without a gene symbol and keep the first row of a repeated symbol (logged)."""
    no_symbol = table.index.isna() | (table.index.astype(str).str.strip() == "")
    if no_symbol.any():
        log.info("%s: dropped %d row(s) without a gene symbol", path, int(no_symbol.sum()))
        table = table[~no_symbol]
    dup = table.index.duplicated(keep="first")
    if dup.any():
        log.warning(
            "%s: %d repeated gene symbol(s), first row kept: %s",
            path,
            int(dup.sum()),
            sorted(set(table.index[dup]))[:20],
        )
        table = table[~dup]
    table.index = table.index.astype(str).str.strip()
    return table


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


# --------------------------------------------------------------------------- cBioPortal omics
def read_cbioportal_matrix(
    path: PathLike, *, sample_types: Sequence[str] = DEFAULT_SAMPLE_TYPES
) -> pd.DataFrame:
    """Read a cBioPortal gene × sample matrix (RSEM or GISTIC CNA) as a case × gene table.

    `data_mrna_seq_v2_rsem.txt` and `data_cna.txt` both have `Hugo_Symbol`, `Entrez_Gene_Id`, then
    one column per sample barcode (TCGA-XX-XXXX-01). One sample per case is kept
    (`choose_samples`); rows without a symbol are dropped, a repeated symbol keeps its first row.
    """
    p = _require_file(path)
    table = _read_tsv(p, dtype={"Hugo_Symbol": str})
    _need_columns(table, ["Hugo_Symbol"], p)
    sample_cols = [c for c in table.columns if c not in _CBIO_ANNOTATION_COLUMNS]
    bad = [c for c in sample_cols if _SAMPLE_RE.match(str(c)) is None]
    if bad:
        raise TCGAFormatError(f"{p}: column(s) {bad[:10]} are not TCGA sample barcodes")
    if not sample_cols:
        raise TCGAFormatError(f"{p}: no sample columns after {list(_CBIO_ANNOTATION_COLUMNS)}")
    genes = table.set_index("Hugo_Symbol")[sample_cols]
    genes = _numeric_frame(_dedup_genes(genes, p), p)
    chosen = choose_samples(sample_cols, sample_types=sample_types, source=str(p))
    return _cases_by_genes(genes, chosen, p)


def read_cbioportal_case_list(path: PathLike) -> list[str]:
    """Sample ids of a cBioPortal case list (`case_lists/cases_sequenced.txt`, `case_list_ids:`)."""
    p = _require_file(path)
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
    p = _require_file(path)
    cols = ["Hugo_Symbol", "Tumor_Sample_Barcode", "Variant_Classification"]
    table = _read_tsv(p, dtype=str, usecols=lambda c: c in cols)
    _need_columns(table, cols, p)
    table = table.dropna(subset=["Tumor_Sample_Barcode"])
    samples = set(table["Tumor_Sample_Barcode"].str.strip())
    if profiled_samples is not None:
        samples |= {str(s).strip() for s in profiled_samples}
    bad = sorted(s for s in samples if _SAMPLE_RE.match(s) is None)
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


# --------------------------------------------------------------------------- GDC omics
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
        p = _require_file(files[sample])
        table = _read_tsv(p, dtype={"gene_id": str, "gene_name": str})
        _need_columns(table, [*required, value], p)
        table = table[~table["gene_id"].str.startswith("N_", na=False)]  # STAR summary rows
        table = table[~table["gene_id"].str.endswith("_PAR_Y", na=False)]  # chrY twins
        genes = _dedup_genes(table.set_index("gene_name")[[value]], p)
        columns[case] = _numeric_frame(genes, p)[value]
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


# --------------------------------------------------------------------------- survival
class SurvivalTable(NamedTuple):
    """Survival labels per case, and the cases left out with the reason."""

    table: pd.DataFrame  # index case_id; survival_months float, event bool
    excluded: pd.DataFrame  # columns case_id, reason


def _finish_survival(
    cases: pd.Series, months: pd.Series, event: pd.Series, path: PathLike
) -> SurvivalTable:
    """Drop cases without a usable time or status, listing each with its reason."""
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
    """
    p = _require_file(path)
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
    _need_columns(table, ["bcr_patient_barcode", "type", "OS", "OS.time"], p)
    if cancer_type is not None:
        code = cancer_code(cancer_type)
        table = table[table["type"].astype(str).str.strip().str.upper() == code]
        if table.empty:
            raise TCGAFormatError(f"{p}: no row with type == {code!r}")
    os_flag = pd.to_numeric(table["OS"], errors="coerce")
    event = os_flag.map({0.0: False, 1.0: True})
    days = pd.to_numeric(table["OS.time"], errors="coerce")
    return _finish_survival(table["bcr_patient_barcode"], days / DAYS_PER_MONTH, event, p)


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
    """
    p = _require_file(path)
    table = _read_tsv(p, dtype={"PATIENT_ID": str, "OS_STATUS": str})
    _need_columns(table, ["PATIENT_ID", "OS_STATUS", "OS_MONTHS"], p)
    months = pd.to_numeric(table["OS_MONTHS"], errors="coerce")
    event = table["OS_STATUS"].map(parse_os_status)
    return _finish_survival(table["PATIENT_ID"], months, event, p)


# --------------------------------------------------------------------------- omics harmonisation
def _log2p1(frame: pd.DataFrame) -> pd.DataFrame:
    """log2(x + 1), with negative values (batch-corrected RSEM artefacts) clipped to 0 first."""
    n_neg = int((frame < 0).sum().sum())
    if n_neg:
        log.warning("log2p1: %d negative value(s) clipped to 0 before log2(x+1)", n_neg)
    return np.log2(frame.clip(lower=0) + 1.0)


TRANSFORMS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "none": lambda frame: frame,
    "log2p1": _log2p1,
}
"""Named omics transforms for config (`omics.transforms: {rnaseq: log2p1, cnv: none}`)."""

DEFAULT_TRANSFORMS: dict[str, str] = {"rnaseq": "log2p1", "cnv": "none", "mut": "none"}

Transform = str | Callable[[pd.DataFrame], pd.DataFrame]


class OmicsResult(NamedTuple):
    """Harmonised omics and what was dropped on the way."""

    table: pd.DataFrame  # index case_id; columns <GENE>_<modality>
    report: pd.DataFrame  # one row per modality: requested/found/dropped counts
    dropped_genes: pd.DataFrame  # column, gene, modality, reason
    dropped_cases: pd.DataFrame  # case_id, reason


def _resolve_transform(modality: str, spec: Transform) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A transform function from its config name (or the callable itself)."""
    if callable(spec):
        return spec
    if spec not in TRANSFORMS:
        raise ValueError(
            f"unknown transform {spec!r} for modality {modality!r}; known: {sorted(TRANSFORMS)}"
        )
    return TRANSFORMS[spec]


def harmonise_omics(
    rna: pd.DataFrame,
    cnv: pd.DataFrame,
    mut: pd.DataFrame | None = None,
    *,
    genes: Iterable[str] | None = None,
    transforms: Mapping[str, Transform] | None = None,
) -> OmicsResult:
    """One row per case with `<GENE>_rnaseq`, `<GENE>_cnv` (and `<GENE>_mut`) columns.

    Cases must be in every given modality table (others are listed in `dropped_cases`). `genes`
    (e.g. the union of the gene families; None = all) are looked up in each modality; after the
    configured `transforms` (default: log2(x+1) for rnaseq), columns that are all missing or
    have zero variance over the kept cases are dropped and counted in `report`.
    """
    sources = {"rnaseq": rna, "cnv": cnv}
    if mut is not None:
        sources["mut"] = mut
    spec = dict(DEFAULT_TRANSFORMS)
    if transforms:
        unknown = [m for m in transforms if m not in MODALITIES]
        if unknown:
            raise ValueError(f"transforms for unknown modalities {unknown}; known: {MODALITIES}")
        spec.update(transforms)
    funcs = {m: _resolve_transform(m, spec[m]) for m in sources}

    case_sets = {m: set(t.index.astype(str)) for m, t in sources.items()}
    all_cases = set().union(*case_sets.values())
    kept_cases = sorted(set.intersection(*case_sets.values()))
    dropped_cases = pd.DataFrame(
        [
            {"case_id": c, "reason": "no " + "/".join(m for m in sources if c not in case_sets[m])}
            for c in sorted(all_cases - set(kept_cases))
        ],
        columns=["case_id", "reason"],
    )
    if len(dropped_cases):
        log.warning(
            "omics: %d case(s) lack a modality and are left out: %s",
            len(dropped_cases),
            dropped_cases.to_dict("records")[:20],
        )
    if not kept_cases:
        raise ValueError(
            "omics: no case is present in every modality table "
            f"({ {m: len(s) for m, s in case_sets.items()} } cases)"
        )

    wanted = None if genes is None else list(dict.fromkeys(str(g) for g in genes))
    blocks: list[pd.DataFrame] = []
    report_rows: list[dict[str, object]] = []
    dropped: list[dict[str, str]] = []
    for modality, table in sources.items():
        table = table.copy()
        table.index = table.index.astype(str)
        table.columns = table.columns.astype(str)
        dup = sorted(set(table.columns[table.columns.duplicated()]))
        if dup:
            raise ValueError(f"omics {modality}: gene(s) {dup[:20]} appear in several columns")
        requested = list(table.columns) if wanted is None else wanted
        absent = [g for g in requested if g not in table.columns]
        present = [g for g in requested if g in table.columns]
        block = funcs[modality](table.loc[kept_cases, present].astype(np.float64))
        empty = block.isna().all(axis=0)
        constant = (block.max(axis=0) == block.min(axis=0)) & ~empty  # NaNs ignored
        all_missing = [g for g in present if empty[g]]
        zero_var = [g for g in present if constant[g]]
        keep = [g for g in present if not (empty[g] or constant[g])]
        for reason, names in (
            ("not in source", absent),
            ("all missing", all_missing),
            ("zero variance", zero_var),
        ):
            dropped += [
                {"column": f"{g}_{modality}", "gene": g, "modality": modality, "reason": reason}
                for g in names
            ]
        report_rows.append(
            {
                "modality": modality,
                "transform": spec[modality] if isinstance(spec[modality], str) else "callable",
                "n_requested": len(requested),
                "n_not_in_source": len(absent),
                "n_all_missing": len(all_missing),
                "n_zero_variance": len(zero_var),
                "n_kept": len(keep),
            }
        )
        log.info(
            "omics %s: %d requested, %d not in source, %d all-missing, %d zero-variance, %d kept",
            modality,
            len(requested),
            len(absent),
            len(all_missing),
            len(zero_var),
            len(keep),
        )
        blocks.append(block[keep].rename(columns=lambda g, m=modality: f"{g}_{m}"))
    out = pd.concat(blocks, axis=1)
    out.index.name = "case_id"
    return OmicsResult(
        table=out,
        report=pd.DataFrame(report_rows),
        dropped_genes=pd.DataFrame(dropped, columns=["column", "gene", "modality", "reason"]),
        dropped_cases=dropped_cases,
    )


def gene_family_report(
    omics: pd.DataFrame | Iterable[str],
    families: Mapping[str, Sequence[str]],
    *,
    cohort: str,
    modalities: Sequence[str] = MODALITIES,
) -> pd.DataFrame:
    """Per family and modality: genes in the family and how many have a column in `omics`."""
    columns = set(omics.columns if isinstance(omics, pd.DataFrame) else omics)
    rows = []
    for family, genes in families.items():
        unique = list(dict.fromkeys(genes))
        for modality in modalities:
            found = sum(f"{g}_{modality}" in columns for g in unique)
            rows.append(
                {
                    "cohort": cohort,
                    "family": family,
                    "modality": modality,
                    "n_family_genes": len(unique),
                    "n_found": found,
                    "fraction_found": round(found / len(unique), 4) if unique else 0.0,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- cohort harmonisation
MissingPolicy = Literal["drop", "keep_unimodal"]


class CohortResult(NamedTuple):
    """Per-case modality availability and decision, and the one-row cohort summary."""

    cases: pd.DataFrame  # index case_id
    summary: pd.DataFrame  # one row: counts per category, paper count


def paper_cases(cohort: str) -> int | None:
    """The paper's number of cases for a cohort ('TCGA-BLCA' → 371), None if not in the paper."""
    return PAPER_CASES.get(cancer_code(cohort))


def harmonise_cohort(
    slides: pd.DataFrame,
    omics: pd.DataFrame,
    survival: pd.DataFrame | SurvivalTable,
    *,
    cohort: str,
    missing_policy: MissingPolicy = "drop",
) -> CohortResult:
    """Join slides, omics and survival by case barcode and decide which cases each model uses.

    Without survival a case is always dropped. With `missing_policy="drop"` only cases with
    slides, omics and survival are kept; `"keep_unimodal"` also keeps slide-only cases for the
    pathology models and omics-only cases for the genomics models.
    """
    if missing_policy not in ("drop", "keep_unimodal"):
        raise ValueError(
            f"missing_policy must be 'drop' or 'keep_unimodal', got {missing_policy!r}"
        )
    if "case_id" not in slides.columns:
        raise ValueError(f"slide sheet lacks column 'case_id'; it has {list(slides.columns)}")
    if "cohort" in slides.columns:
        slides = slides[slides["cohort"].astype(str) == cohort]
    excluded: dict[str, str] = {}
    if isinstance(survival, SurvivalTable):
        excluded = dict(zip(survival.excluded["case_id"], survival.excluded["reason"], strict=True))
        survival = survival.table
    n_slides = slides["case_id"].astype(str).value_counts()
    omics_cases = set(omics.index[omics.notna().any(axis=1)].astype(str))
    surv_cases = set(survival.index.astype(str))
    everyone = sorted(set(n_slides.index) | omics_cases | surv_cases | set(excluded))

    rows = []
    for case in everyone:
        has_s, has_o, has_v = case in n_slides.index, case in omics_cases, case in surv_cases
        if has_s and has_o:
            category = "all_modalities" if has_v else "no_survival"
        elif has_s:
            category = "slide_only" if has_v else "no_survival"
        elif has_o:
            category = "omics_only" if has_v else "no_survival"
        else:
            category = "survival_only" if has_v else "no_survival"
        use_path = use_gen = False
        reason = ""
        if not has_v:
            reason = "no survival" + (f" ({excluded[case]})" if case in excluded else "")
        elif category == "all_modalities":
            use_path = use_gen = True
        elif category == "survival_only":
            reason = "no slides and no omics"
        elif missing_policy == "drop":
            reason = "missing omics" if category == "slide_only" else "missing slides"
        else:
            use_path, use_gen = category == "slide_only", category == "omics_only"
        rows.append(
            {
                "case_id": case,
                "cohort": cohort,
                "n_slides": int(n_slides.get(case, 0)),
                "has_slides": has_s,
                "has_omics": has_o,
                "has_survival": has_v,
                "category": category,
                "kept": use_path or use_gen,
                "use_pathology": use_path,
                "use_genomics": use_gen,
                "use_multimodal": use_path and use_gen,
                "reason": reason,
            }
        )
    cases = pd.DataFrame(rows).set_index("case_id")
    cat = cases["category"].value_counts()
    n_multi = int(cases["use_multimodal"].sum())
    paper = paper_cases(cohort)
    summary = pd.DataFrame(
        [
            {
                "cohort": cohort,
                "missing_policy": missing_policy,
                "n_cases_seen": len(cases),
                "n_all_modalities": int(cat.get("all_modalities", 0)),
                "n_slide_only": int(cat.get("slide_only", 0)),
                "n_omics_only": int(cat.get("omics_only", 0)),
                "n_survival_only": int(cat.get("survival_only", 0)),
                "n_no_survival": int(cat.get("no_survival", 0)),
                "n_kept": int(cases["kept"].sum()),
                "n_dropped": int((~cases["kept"]).sum()),
                "n_multimodal": n_multi,
                "n_pathology": int(cases["use_pathology"].sum()),
                "n_genomics": int(cases["use_genomics"].sum()),
                "paper_cases": paper if paper is not None else pd.NA,
                "diff_vs_paper": n_multi - paper if paper is not None else pd.NA,
            }
        ]
    )
    dropped = cases[~cases["kept"]]
    if len(dropped):
        log.info(
            "%s: %d case(s) dropped: %s",
            cohort,
            len(dropped),
            dropped["reason"].value_counts().to_dict(),
        )
    return CohortResult(cases, summary)


# --------------------------------------------------------------------------- writers
def write_table(table: pd.DataFrame, path: PathLike, *, index: bool = False) -> None:
    """Write a TSV report table atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=index, lineterminator="\n")


def write_clinical(survival: pd.DataFrame | SurvivalTable, path: PathLike) -> None:
    """Write the pipeline's clinical TSV (case_id, survival_months, event 0/1, extra columns)."""
    table = survival.table if isinstance(survival, SurvivalTable) else survival
    missing = [c for c in ("survival_months", "event") if c not in table.columns]
    if missing:
        raise ValueError(f"clinical table for {path} lacks column(s) {missing}")
    out = table.copy()
    out["event"] = out["event"].astype(bool).astype(int)
    extra = [c for c in out.columns if c not in ("survival_months", "event")]
    out = out[["survival_months", "event", *extra]].sort_index()
    out.index = out.index.astype(str)
    out.index.name = "case_id"
    with atomic_path(path) as tmp:
        out.to_csv(tmp, sep="\t", lineterminator="\n")


def write_omics(omics: pd.DataFrame, path: PathLike) -> None:
    """Write the pipeline's omics TSV (case_id, then `<GENE>_<modality>` float columns)."""
    bad = [c for c in omics.columns if c.rpartition("_")[2] not in MODALITIES]
    if bad:
        raise ValueError(
            f"omics table for {path}: columns {bad[:10]} lack a _rnaseq/_cnv/_mut suffix"
        )
    out = omics.astype(np.float64).sort_index()
    out.index = out.index.astype(str)
    out.index.name = "case_id"
    with atomic_path(path) as tmp:
        out.to_csv(tmp, sep="\t", lineterminator="\n")


def select_for_pipeline(
    result: CohortResult,
    *,
    slides: pd.DataFrame,
    omics: pd.DataFrame,
    survival: pd.DataFrame | SurvivalTable,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The (slide sheet rows, clinical, omics) of the kept cases, each restricted to its use."""
    table = survival.table if isinstance(survival, SurvivalTable) else survival
    cases = result.cases
    path_cases = set(cases.index[cases["use_pathology"]])
    gen_cases = set(cases.index[cases["use_genomics"]])
    kept = set(cases.index[cases["kept"]])
    sheet = slides[slides["case_id"].astype(str).isin(path_cases)]
    if "cohort" in sheet.columns and len(cases):
        sheet = sheet[sheet["cohort"].astype(str) == str(cases["cohort"].iloc[0])]
    clinical = table[table.index.astype(str).isin(kept)]
    omics_kept = omics[omics.index.astype(str).isin(gen_cases)]
    return sheet, clinical, omics_kept


REPORT_FILES: dict[str, str] = {
    "cases": "cases.tsv",
    "summary": "cohort_summary.tsv",
    "omics_report": "omics_report.tsv",
    "dropped_genes": "omics_dropped_genes.tsv",
    "dropped_cases": "omics_dropped_cases.tsv",
    "survival_excluded": "survival_excluded.tsv",
    "gene_families": "gene_family_report.tsv",
}
"""File names `prepare_cohort` writes into its report directory (keys are for rule outputs)."""


def prepare_cohort(
    *,
    cohort: str,
    slides: pd.DataFrame,
    rna: pd.DataFrame,
    cnv: pd.DataFrame,
    mut: pd.DataFrame | None,
    survival: SurvivalTable,
    families: Mapping[str, Sequence[str]],
    clinical_out: PathLike,
    omics_out: PathLike,
    report_dir: PathLike,
    transforms: Mapping[str, Transform] | None = None,
    missing_policy: MissingPolicy = "drop",
    slides_out: PathLike | None = None,
) -> CohortResult:
    """Harmonise one cohort's parsed tables and write the pipeline inputs plus the reports.

    Omics are restricted to the family genes; clinical.tsv holds every kept case, omics.tsv the
    cases used by genomics models and `slides_out` (optional) the slides of pathology cases.
    """
    genes = list(dict.fromkeys(g for fam in families.values() for g in fam))
    omics = harmonise_omics(rna, cnv, mut, genes=genes, transforms=transforms)
    result = harmonise_cohort(
        slides, omics.table, survival, cohort=cohort, missing_policy=missing_policy
    )
    sheet, clinical, omics_kept = select_for_pipeline(
        result, slides=slides, omics=omics.table, survival=survival
    )
    write_clinical(clinical, clinical_out)
    write_omics(omics_kept, omics_out)
    if slides_out is not None:
        write_table(sheet, slides_out)
    out = Path(report_dir)
    write_table(result.cases, out / REPORT_FILES["cases"], index=True)
    write_table(result.summary, out / REPORT_FILES["summary"])
    write_table(omics.report.assign(cohort=cohort), out / REPORT_FILES["omics_report"])
    write_table(omics.dropped_genes, out / REPORT_FILES["dropped_genes"])
    write_table(omics.dropped_cases, out / REPORT_FILES["dropped_cases"])
    write_table(survival.excluded, out / REPORT_FILES["survival_excluded"])
    family = gene_family_report(omics_kept, families, cohort=cohort)
    write_table(family, out / REPORT_FILES["gene_families"])
    return result


# --------------------------------------------------------------------------- acquisition
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
            f"acquisition.omics.archive_url {template!r} must contain the placeholder {{study}}"
        )
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", study):
        raise ValueError(f"cBioPortal study id {study!r} must match [A-Za-z0-9_.-]+")
    return template.replace("{study}", study)


def fetch_source(
    url: str,
    dest: PathLike,
    *,
    md5: str | None,
    label: str,
    download: Mapping[str, Any] | None = None,
    checked_after: bool = False,
) -> Path:
    """Download one omics/survival source with the `download` settings (resume, retries, md5).

    `checked_after`: the caller verifies the file itself (e.g. a sha256), so a missing md5 is
    not worth a warning.
    """
    from mmsurv.acquire.gdc import DOWNLOAD_DEFAULTS, download_file

    s = {**DOWNLOAD_DEFAULTS, **(download or {})}
    if not md5 and not checked_after:
        log.warning(
            "%s: no md5 configured; the download is resumed and retried but not checksum-verified",
            label,
        )
    return download_file(
        url,
        dest,
        md5=md5 or None,
        retries=int(s["retries"]),
        backoff=float(s["backoff"]),
        max_backoff=float(s["max_backoff"]),
        timeout=float(s["timeout"]),
        chunk_size=int(s["chunk_kb"]) * 1024,
        progress_every=int(float(s["progress_mb"]) * (1 << 20)),
        verify_existing=bool(s["verify_existing"]),
        label=label,
    )


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
    p = _require_file(archive)
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


def _read_omics_sources(
    source: str,
    rnaseq: PathLike,
    cnv: PathLike,
    *,
    sample_types: Sequence[str],
    rnaseq_value: str,
    cnv_value: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The case × gene RNA and CNV tables of one cohort from the configured omics source."""
    if source == "cbioportal":
        return (
            read_cbioportal_matrix(rnaseq, sample_types=sample_types),
            read_cbioportal_matrix(cnv, sample_types=sample_types),
        )
    if source == "gdc":
        from mmsurv.acquire.gdc import read_omics_file_table

        rna_files = read_omics_file_table(rnaseq, "rnaseq")
        cnv_files = read_omics_file_table(cnv, "cnv")
        log.info(
            "GDC omics: %d STAR-counts files (%s), %d gene-level copy-number files (%s)",
            len(rna_files),
            rnaseq_value,
            len(cnv_files),
            cnv_value,
        )
        return (
            read_gdc_star_counts(rna_files, value=rnaseq_value, sample_types=sample_types),
            read_gdc_gene_cnv(cnv_files, value=cnv_value, sample_types=sample_types),
        )
    raise ValueError(f"acquisition.omics.source must be 'cbioportal' or 'gdc', got {source!r}")


def prepare_cohort_from_files(
    *,
    cohort: str,
    slide_sheet: PathLike,
    rnaseq: PathLike,
    cnv: PathLike,
    survival: PathLike,
    survival_source: Literal["cbioportal", "tcdr"],
    gene_families: PathLike,
    clinical_out: PathLike,
    omics_out: PathLike,
    report_dir: PathLike,
    mut: PathLike | None = None,
    case_list: PathLike | None = None,
    transforms: Mapping[str, Transform] | None = None,
    sample_types: Sequence[str] = DEFAULT_SAMPLE_TYPES,
    missing_policy: MissingPolicy = "drop",
    omics_source: Literal["cbioportal", "gdc"] = "cbioportal",
    rnaseq_value: str = "tpm_unstranded",
    cnv_value: str = "copy_number",
) -> CohortResult:
    """Parse a cohort's omics and survival sources, then `prepare_cohort`.

    `omics_source="cbioportal"`: `rnaseq`/`cnv` are the unpacked study matrices. `"gdc"`: they
    are the downloaded-files tables of `acquire.gdc.fetch_omics_files` (one per modality), read
    with `read_gdc_star_counts` (column `rnaseq_value`) and `read_gdc_gene_cnv` (`cnv_value`).
    """
    from mmsurv.genes import load_gene_families

    if survival_source == "cbioportal":
        surv = read_cbioportal_survival(survival)
    elif survival_source == "tcdr":
        surv = read_tcga_cdr(survival, cancer_type=cohort)
    else:
        raise ValueError(
            f"acquisition.survival.source must be 'cbioportal' or 'tcdr', got {survival_source!r}"
        )
    slides = pd.read_csv(slide_sheet, sep="\t", dtype=str)
    _need_columns(slides, ["cohort", "case_id", "slide_id"], slide_sheet)
    types = tuple(sample_types)
    muts = None
    if mut is not None:
        profiled = read_cbioportal_case_list(case_list) if case_list is not None else None
        muts = read_maf(mut, sample_types=types, profiled_samples=profiled)
    rna_table, cnv_table = _read_omics_sources(
        omics_source,
        rnaseq,
        cnv,
        sample_types=types,
        rnaseq_value=rnaseq_value,
        cnv_value=cnv_value,
    )
    result = prepare_cohort(
        cohort=cohort,
        slides=slides[slides["cohort"] == cohort],
        rna=rna_table,
        cnv=cnv_table,
        mut=muts,
        survival=surv,
        families=load_gene_families(gene_families),
        clinical_out=clinical_out,
        omics_out=omics_out,
        report_dir=report_dir,
        transforms=transforms,
        missing_policy=missing_policy,
    )
    log.info("%s: cohort summary %s", cohort, result.summary.iloc[0].to_dict())
    return result


def concat_reports(paths: Sequence[PathLike], out: PathLike) -> pd.DataFrame:
    """Stack per-cohort report TSVs (same columns) into one table and write it atomically."""
    if not paths:
        raise ValueError(f"no per-cohort report to concatenate into {out}")
    tables = [pd.read_csv(p, sep="\t", keep_default_na=False, na_values=[""]) for p in paths]
    first = list(tables[0].columns)
    for path, table in zip(paths, tables, strict=True):
        if list(table.columns) != first:
            raise TCGAFormatError(f"{path}: columns {list(table.columns)} differ from {first}")
    table = pd.concat(tables, ignore_index=True)
    write_table(table, out)
    return table
