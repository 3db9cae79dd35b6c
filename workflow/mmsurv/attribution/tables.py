"""Per-case, per-gene and per-family tables of IG attributions (pure pandas/NumPy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mmsurv.genes import split_column

__all__ = [
    "CASE_COLUMNS",
    "case_table",
    "family_table",
    "gene_attributions",
    "gene_table",
    "position_families",
]

# The per-case columns of cases.tsv.gz before the family and gene columns.
CASE_COLUMNS = ("case_id", "fold", "seed", "risk", "baseline_risk", "ig_delta")
FAMILY_PREFIX = "family:"


def position_families(
    block_columns: Sequence[Sequence[str]],
    block_families: Sequence[str] | None,
    families: dict[str, list[str]],
) -> dict[str, list[int]]:
    """Input positions (blocks concatenated) that make up each family, in family order.

    One block per family: the family's block. One block of unique columns (models on the
    concatenated vector under omic_input unique_genes): the positions of the family's columns,
    so a column in two families counts in both.
    """
    if block_families is not None:
        out, start = {}, 0
        for fam, cols in zip(block_families, block_columns, strict=True):
            out[fam] = list(range(start, start + len(cols)))
            start += len(cols)
        return out
    index = {c: i for i, c in enumerate(c for cols in block_columns for c in cols)}
    return {fam: [index[c] for c in cols] for fam, cols in families.items()}


def gene_attributions(
    attributions: np.ndarray, block_columns: Sequence[Sequence[str]]
) -> pd.DataFrame:
    """(cases x positions) → (cases x omics columns): a column in two blocks gets their sum."""
    columns = [c for cols in block_columns for c in cols]
    if attributions.shape[1] != len(columns):
        raise ValueError(
            f"attributions have {attributions.shape[1]} positions, the layout {len(columns)}"
        )
    frame = pd.DataFrame(attributions, columns=columns)
    return frame.T.groupby(level=0, sort=False).sum().T


def case_table(
    meta: pd.DataFrame, genes: pd.DataFrame, attributions: np.ndarray, fam_pos: dict[str, list[int]]
) -> pd.DataFrame:
    """cases.tsv.gz: CASE_COLUMNS, then each family's signed sum ('family:<name>'), then genes."""
    fams = pd.DataFrame(
        {f"{FAMILY_PREFIX}{f}": attributions[:, pos].sum(axis=1) for f, pos in fam_pos.items()}
    )
    return pd.concat(
        [meta[list(CASE_COLUMNS)].reset_index(drop=True), fams, genes.reset_index(drop=True)],
        axis=1,
    )


def gene_table(genes: pd.DataFrame, families: dict[str, list[str]]) -> pd.DataFrame:
    """Per omics column over the cases: mean signed and mean |attribution|, rank 1 = largest |.|."""
    member: dict[str, list[str]] = {}
    for fam, cols in families.items():
        for c in cols:
            member.setdefault(c, []).append(fam)
    parsed = [split_column(c) for c in genes.columns]
    table = pd.DataFrame(
        {
            "column": genes.columns,
            "gene": [p[0] if p else c for p, c in zip(parsed, genes.columns, strict=True)],
            "modality": [p[1] if p else "" for p in parsed],
            "families": [",".join(member.get(c, [])) for c in genes.columns],
            "mean_attribution": genes.mean(axis=0).to_numpy(),
            "mean_abs_attribution": genes.abs().mean(axis=0).to_numpy(),
        }
    )
    table = table.sort_values(
        ["mean_abs_attribution", "column"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table


def family_table(attributions: np.ndarray, fam_pos: dict[str, list[int]]) -> pd.DataFrame:
    """Per family over the cases: sum over its genes of |attribution| and of the signed one.

    `mean_abs_attribution` = mean over cases of sum_g |a_g| (how much the family moves the risk
    in either direction), `mean_attribution` = mean of sum_g a_g (its net push, + = riskier),
    `mean_abs_net` = mean of |sum_g a_g|.
    """
    rows = []
    for fam, pos in fam_pos.items():
        block = attributions[:, pos]
        net = block.sum(axis=1)
        rows.append(
            {
                "family": fam,
                "n_inputs": len(pos),
                "mean_attribution": float(net.mean()),
                "mean_abs_attribution": float(np.abs(block).sum(axis=1).mean()),
                "mean_abs_net": float(np.abs(net).mean()),
            }
        )
    return pd.DataFrame(rows)
