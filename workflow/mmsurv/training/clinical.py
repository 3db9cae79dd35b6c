"""Clinical covariates as model inputs: one encoding, fitted on a fold's training cases.

`training.clinical_covariates` names columns of the clinical table. Text (and
`CATEGORICAL_COVARIATES`) columns are one-hot encoded with a 'missing' level; numeric ones are
median-imputed then standardised. The linear floor `cox_clinical` (training/linear.py) and the
deep `*_clinical` models (one extra omics block, training/setup.py) share `fit_clinical`; the
fitted statistics go into the checkpoint so `encode_clinical` rebuilds any case's vector
(heatmaps, attribution). sklearn is imported inside `fit_clinical`: deep jobs that never encode
clinical covariates do not pay its start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORICAL_COVARIATES",
    "ClinicalEncoding",
    "clinical_columns",
    "encode_clinical",
    "fit_clinical",
]

CATEGORICAL_COVARIATES = frozenset({"sex", "site", "stage", "race", "oncotree_code"})
"""Clinical covariates one-hot encoded even when their values look numeric (TSS codes like 21)."""
RESERVED = ("case_id", "survival_months", "event")
MISSING_LEVEL = "missing"


@dataclass(frozen=True)
class ClinicalEncoding:
    """Encoded covariates of the training and held-out cases, and the fitted statistics."""

    train: pd.DataFrame
    test: pd.DataFrame
    stats: dict[str, Any]  # numeric, categorical, median, mean, scale, categories (plain lists)


def _check(clinical: pd.DataFrame, covariates: list[str], clinical_tsv: str, model: str) -> None:
    """Covariates must be clinical columns, not the survival labels."""
    reserved = [c for c in covariates if c in RESERVED]
    if reserved:
        raise ValueError(f"training.clinical_covariates: {reserved} are labels, not covariates")
    absent = [c for c in covariates if c not in clinical.columns]
    if absent:
        have = [c for c in clinical.columns if c not in RESERVED]
        raise ValueError(
            f"{clinical_tsv}: no column(s) {absent} for {model} "
            f"(training.clinical_covariates); its clinical columns are {have}"
        )


def _as_text(values: pd.Series) -> pd.Series:
    """A categorical column as text: a site code 21 and '21' are one level; NaN stays NaN."""
    return values.map(lambda v: v if pd.isna(v) else str(v)).astype(object)


def fit_clinical(
    clinical: pd.DataFrame,
    train_ids: list[str],
    test_ids: list[str],
    covariates: list[str],
    *,
    clinical_tsv: str,
    model: str = "cox_clinical",
) -> ClinicalEncoding:
    """One-hot text covariates, standardised numeric ones (training medians fill gaps)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    _check(clinical, covariates, clinical_tsv, model)
    table = clinical[covariates].copy()
    empty = [c for c in covariates if table.loc[train_ids, c].isna().all()]
    if empty:
        raise ValueError(f"{clinical_tsv}: column(s) {empty} have no value for the training cases")
    numeric = [
        c
        for c in covariates
        if c not in CATEGORICAL_COVARIATES
        and pd.api.types.is_numeric_dtype(table[c])
        and not pd.api.types.is_bool_dtype(table[c])
    ]
    categorical = [c for c in covariates if c not in numeric]
    for c in categorical:
        table[c] = _as_text(table[c])
    transform = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                              ("scale", StandardScaler())]), numeric),
            ("cat", Pipeline([("impute", SimpleImputer(strategy="constant",
                                                       fill_value=MISSING_LEVEL)),
                              ("onehot", OneHotEncoder(handle_unknown="ignore",
                                                       sparse_output=False))]), categorical),
        ],
        verbose_feature_names_out=False,
    )  # fmt: skip
    train = transform.fit_transform(table.loc[train_ids])
    names = [str(n) for n in transform.get_feature_names_out()]
    test = transform.transform(table.loc[test_ids])
    stats: dict[str, Any] = {"numeric": numeric, "categorical": categorical}
    if numeric:
        num = transform.named_transformers_["num"]
        stats["median"] = num.named_steps["impute"].statistics_.tolist()
        stats["mean"] = num.named_steps["scale"].mean_.tolist()
        stats["scale"] = num.named_steps["scale"].scale_.tolist()
    if categorical:
        onehot = transform.named_transformers_["cat"].named_steps["onehot"]
        cats = zip(categorical, onehot.categories_, strict=True)
        stats["categories"] = {c: [str(v) for v in levels] for c, levels in cats}
    return ClinicalEncoding(
        train=pd.DataFrame(train, index=train_ids, columns=names, dtype=np.float64),
        test=pd.DataFrame(test, index=test_ids, columns=names, dtype=np.float64),
        stats=stats,
    )


def clinical_columns(stats: dict[str, Any]) -> list[str]:
    """Names of the encoded columns: numeric covariates, then `<covariate>_<level>`."""
    cats = stats.get("categories", {})
    return [*stats["numeric"], *(f"{c}_{v}" for c in stats["categorical"] for v in cats[c])]


def encode_clinical(
    clinical: pd.DataFrame,
    case_ids: list[str],
    stats: dict[str, Any],
    *,
    clinical_tsv: str,
    model: str = "the model",
) -> pd.DataFrame:
    """`fit_clinical`'s encoding of `case_ids` from its stored statistics (float64 frame).

    A missing numeric value takes the training median; an unseen level is all zeros.
    """
    covariates = [*stats["numeric"], *stats["categorical"]]
    _check(clinical, covariates, clinical_tsv, model)
    absent = [c for c in case_ids if c not in clinical.index]
    if absent:
        raise ValueError(f"{clinical_tsv}: no clinical row for cases {absent[:20]} ({model})")
    rows = clinical.loc[case_ids]
    parts: list[np.ndarray] = []
    if stats["numeric"]:
        x = rows[stats["numeric"]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        x = np.where(np.isnan(x), np.asarray(stats["median"], dtype=np.float64), x)
        parts.append((x - np.asarray(stats["mean"])) / np.asarray(stats["scale"]))
    for c in stats["categorical"]:
        text = _as_text(rows[c]).fillna(MISSING_LEVEL).to_numpy()
        levels = np.asarray(stats["categories"][c], dtype=object)
        parts.append((text[:, None] == levels[None, :]).astype(np.float64))
    values = np.concatenate(parts, axis=1) if parts else np.zeros((len(case_ids), 0))
    return pd.DataFrame(values, index=list(case_ids), columns=clinical_columns(stats))
