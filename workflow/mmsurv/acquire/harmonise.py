"""Harmonise a cohort: one omics row per case, and which cases each kind of model uses."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from mmsurv.acquire.survival import SurvivalTable, cancer_code
from mmsurv.genes import MODALITIES

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- omics
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
    kept_cases, dropped_cases = _cases_in_every_modality(sources)

    wanted = None if genes is None else list(dict.fromkeys(str(g) for g in genes))
    blocks: list[pd.DataFrame] = []
    report_rows: list[dict[str, object]] = []
    dropped: list[dict[str, str]] = []
    for modality, table in sources.items():
        block, report_row, gone = _modality_block(
            modality,
            table,
            cases=kept_cases,
            wanted=wanted,
            func=funcs[modality],
            transform=spec[modality] if isinstance(spec[modality], str) else "callable",
        )
        blocks.append(block)
        report_rows.append(report_row)
        dropped += gone
    out = pd.concat(blocks, axis=1)
    out.index.name = "case_id"
    return OmicsResult(
        table=out,
        report=pd.DataFrame(report_rows),
        dropped_genes=pd.DataFrame(dropped, columns=["column", "gene", "modality", "reason"]),
        dropped_cases=dropped_cases,
    )


def _cases_in_every_modality(
    sources: Mapping[str, pd.DataFrame],
) -> tuple[list[str], pd.DataFrame]:
    """The cases of every modality table, and the others with the modalities they lack (logged)."""
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
    return kept_cases, dropped_cases


def _modality_block(
    modality: str,
    table: pd.DataFrame,
    *,
    cases: list[str],
    wanted: list[str] | None,
    func: Callable[[pd.DataFrame], pd.DataFrame],
    transform: str,
) -> tuple[pd.DataFrame, dict[str, object], list[dict[str, str]]]:
    """One modality's kept `<GENE>_<modality>` columns, its report row and its dropped genes."""
    table = table.copy()
    table.index = table.index.astype(str)
    table.columns = table.columns.astype(str)
    dup = sorted(set(table.columns[table.columns.duplicated()]))
    if dup:
        raise ValueError(f"omics {modality}: gene(s) {dup[:20]} appear in several columns")
    requested = list(table.columns) if wanted is None else wanted
    absent = [g for g in requested if g not in table.columns]
    present = [g for g in requested if g in table.columns]
    block = func(table.loc[cases, present].astype(np.float64))
    empty = block.isna().all(axis=0)
    constant = (block.max(axis=0) == block.min(axis=0)) & ~empty  # NaNs ignored
    all_missing = [g for g in present if empty[g]]
    zero_var = [g for g in present if constant[g]]
    keep = [g for g in present if not (empty[g] or constant[g])]
    dropped: list[dict[str, str]] = []
    for reason, names in (
        ("not in source", absent),
        ("all missing", all_missing),
        ("zero variance", zero_var),
    ):
        dropped += [
            {"column": f"{g}_{modality}", "gene": g, "modality": modality, "reason": reason}
            for g in names
        ]
    report_row: dict[str, object] = {
        "modality": modality,
        "transform": transform,
        "n_requested": len(requested),
        "n_not_in_source": len(absent),
        "n_all_missing": len(all_missing),
        "n_zero_variance": len(zero_var),
        "n_kept": len(keep),
    }
    log.info(
        "omics %s: %d requested, %d not in source, %d all-missing, %d zero-variance, %d kept",
        modality,
        len(requested),
        len(absent),
        len(all_missing),
        len(zero_var),
        len(keep),
    )
    return block[keep].rename(columns=lambda g: f"{g}_{modality}"), report_row, dropped


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


# --------------------------------------------------------------------------- cohort
MissingPolicy = Literal["drop", "keep_unimodal"]

PAPER_CASES: dict[str, int] = {"BLCA": 371, "LUAD": 450, "UCEC": 475}
"""Cases per cancer in Zhang et al. 2025 (docs: /work/shared/paper/SPEC.md, section Data)."""


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
        category = _category(has_s, has_o, has_v)
        use_path, use_gen, reason = _decide(
            case, category, has_survival=has_v, excluded=excluded, missing_policy=missing_policy
        )
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
    summary = _cohort_summary(cases, cohort=cohort, missing_policy=missing_policy)
    dropped = cases[~cases["kept"]]
    if len(dropped):
        log.info(
            "%s: %d case(s) dropped: %s",
            cohort,
            len(dropped),
            dropped["reason"].value_counts().to_dict(),
        )
    return CohortResult(cases, summary)


def _category(has_s: bool, has_o: bool, has_v: bool) -> str:
    """A case's modality category from whether it has slides, omics and survival."""
    if has_s and has_o:
        category = "all_modalities" if has_v else "no_survival"
    elif has_s:
        category = "slide_only" if has_v else "no_survival"
    elif has_o:
        category = "omics_only" if has_v else "no_survival"
    else:
        category = "survival_only" if has_v else "no_survival"
    return category


def _decide(
    case: str,
    category: str,
    *,
    has_survival: bool,
    excluded: Mapping[str, str],
    missing_policy: MissingPolicy,
) -> tuple[bool, bool, str]:
    """(use for pathology, use for genomics, reason when dropped) of one case."""
    use_path = use_gen = False
    reason = ""
    if not has_survival:
        reason = "no survival" + (f" ({excluded[case]})" if case in excluded else "")
    elif category == "all_modalities":
        use_path = use_gen = True
    elif category == "survival_only":
        reason = "no slides and no omics"
    elif missing_policy == "drop":
        reason = "missing omics" if category == "slide_only" else "missing slides"
    else:
        use_path, use_gen = category == "slide_only", category == "omics_only"
    return use_path, use_gen, reason


def _cohort_summary(cases: pd.DataFrame, *, cohort: str, missing_policy: str) -> pd.DataFrame:
    """The one-row summary of a cohort's cases: counts per category and use, paper count."""
    cat = cases["category"].value_counts()
    n_multi = int(cases["use_multimodal"].sum())
    paper = paper_cases(cohort)
    return pd.DataFrame(
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
