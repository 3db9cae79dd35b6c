"""Site-preserved folds: every tissue source site inside one held-out fold (splits.source site).

TCGA's tissue source sites carry batch effects (staining, scanner, population), so folds that
mix a site's cases between training and test flatter a model that learns the site. SurvPath and
slideflow advise site-preserved folds; these keep each site whole and stratify by event.
"""

from __future__ import annotations

import logging
import os
import re

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

log = logging.getLogger(__name__)

__all__ = ["case_sites", "make_site_folds"]

# TCGA-<TSS>-<participant>: the tissue source site is barcode characters 6-7 (1-based).
_TCGA_CASE = re.compile(r"TCGA-([A-Z0-9]{2})-[A-Z0-9]{4}")


def case_sites(
    clinical: pd.DataFrame, source: str | os.PathLike[str] = "clinical table"
) -> pd.Series:
    """Each case's tissue source site: from its TCGA barcode, else the table's `site` column."""
    # The barcode comes first: a `site` column read by pandas can lose its leading zero
    # (TCGA-05-4249 → 5 in the published MCAT LUAD table), the barcode cannot.
    from_barcode = clinical.index.to_series().astype(str).str.extract(_TCGA_CASE, expand=False)
    if "site" in clinical.columns:
        column = clinical["site"].map(lambda v: None if pd.isna(v) else str(v).strip() or None)
        sites = from_barcode.fillna(column)
    else:
        sites = from_barcode
    missing = sites.index[sites.isna()].tolist()
    if missing:
        raise ValueError(
            f"{source}: splits.source site needs each case's tissue source site, from a TCGA "
            f"barcode (TCGA-<site>-<participant>) or a `site` column; none for cases {missing[:20]}"
        )
    return sites.rename("site")


def make_site_folds(
    clinical: pd.DataFrame, sites: pd.Series, n_folds: int = 5, seed: int = 0
) -> pd.DataFrame | None:
    """Folds stratified by event with each site in one fold; None (warned) where that cannot be.

    None when a site holds more than 1/n_folds of the cases (its fold could not be of the
    usual size) or there are fewer sites than folds; the caller then makes case-level folds.
    """
    sites = sites.reindex(clinical.index)
    n = len(clinical)
    counts = sites.value_counts()
    too_big = counts[counts > n / n_folds]
    if len(counts) < n_folds or len(too_big):
        why = (
            f"only {len(counts)} site(s) for {n_folds} folds"
            if len(counts) < n_folds
            else f"site(s) {too_big.to_dict()} hold more than 1/{n_folds} of the {n} cases"
        )
        log.warning("site-preserved folds impossible: %s; falling back to case-level folds", why)
        return None
    events = clinical["event"].to_numpy(dtype=bool).astype(int)
    # StratifiedGroupKFold (scikit-learn) keeps each group whole and balances the event rate.
    splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
    fold = np.full(n, -1, dtype=np.int64)
    for k, (_, test_idx) in enumerate(splitter.split(np.zeros((n, 1)), events, sites.to_numpy())):
        fold[test_idx] = k
    out = pd.DataFrame({"case_id": clinical.index.astype(str), "fold": fold})
    per_fold = out.assign(site=sites.to_numpy()).groupby("fold")["site"].nunique().to_dict()
    log.info("site-preserved folds: %d sites, sites per fold %s", len(counts), per_fold)
    return out
