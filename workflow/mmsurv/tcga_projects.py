"""The 33 TCGA projects (GDC project ids) and their cBioPortal PanCancer Atlas study ids.

Read at parse time (`config.derive_defaults`), so a pan-cancer config names projects only and
no study id is written by hand. COAD and READ share cBioPortal's `coadread` study; each cohort
keeps only its own cases (the slide sheet's and the TCGA-CDR's `type`).
"""

from __future__ import annotations

__all__ = ["NO_DIAGNOSTIC_SLIDES", "TCGA_PROJECTS", "pancan_study"]

# GDC project id -> cBioPortal study id (cbioportal.org, "PanCancer Atlas" studies, 2018).
TCGA_PROJECTS: dict[str, str] = {
    f"TCGA-{code}": f"{study}_tcga_pan_can_atlas_2018"
    for code, study in (
        ("ACC", "acc"), ("BLCA", "blca"), ("BRCA", "brca"), ("CESC", "cesc"), ("CHOL", "chol"),
        ("COAD", "coadread"), ("DLBC", "dlbc"), ("ESCA", "esca"), ("GBM", "gbm"),
        ("HNSC", "hnsc"), ("KICH", "kich"), ("KIRC", "kirc"), ("KIRP", "kirp"),
        ("LAML", "laml"), ("LGG", "lgg"), ("LIHC", "lihc"), ("LUAD", "luad"), ("LUSC", "lusc"),
        ("MESO", "meso"), ("OV", "ov"), ("PAAD", "paad"), ("PCPG", "pcpg"), ("PRAD", "prad"),
        ("READ", "coadread"), ("SARC", "sarc"), ("SKCM", "skcm"), ("STAD", "stad"),
        ("TGCT", "tgct"), ("THCA", "thca"), ("THYM", "thym"), ("UCEC", "ucec"), ("UCS", "ucs"),
        ("UVM", "uvm"),
    )
}  # fmt: skip

# Acute myeloid leukaemia: blood and marrow, no diagnostic tissue slide at the GDC.
NO_DIAGNOSTIC_SLIDES = frozenset({"TCGA-LAML"})


def pancan_study(project: str) -> str | None:
    """The cBioPortal PanCancer Atlas study of a GDC TCGA project id, or None if not TCGA."""
    return TCGA_PROJECTS.get(project)
