"""Integrated Gradients (Captum) of one fold model's risk with respect to its omics inputs.

The model of a fold is rebuilt exactly as training built it (training.setup: same cases, same
training-fold standardisation, same layout of the omics blocks), its checkpoint loaded, and each
held-out case attributed against the mean omics vector of that fold's *training* cases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from captum.attr import IntegratedGradients

from mmsurv.bags.omics import read_families_json
from mmsurv.model_catalog import is_linear_floor, model_inputs
from mmsurv.training.clinical import clinical_columns
from mmsurv.training.outputs import checkpoint_path_scaler, read_checkpoint
from mmsurv.training.setup import (
    FoldCases,
    FoldInputs,
    FoldJob,
    build_model,
    load_inputs,
    omics_blocks_for,
)

log = logging.getLogger(__name__)

__all__ = [
    "FoldAttribution",
    "FoldModel",
    "attribute_fold",
    "integrated_gradients",
    "load_fold",
    "risk_function",
]


@dataclass
class FoldModel:
    """One fold's trained model in eval mode, its cases and the inputs training gave it."""

    model: torch.nn.Module
    job: FoldJob
    inputs: FoldInputs
    train_ids: list[str]  # every training case of the fold (inner-validation ones included)
    test_ids: list[str]
    block_columns: list[list[str]]  # omics column of each input position, per block
    block_families: list[str] | None  # family of each block; None: one block of unique columns

    def close(self) -> None:
        """Close the bag store (open only for models that read pathology)."""
        if self.inputs.store is not None:
            self.inputs.store.close()


@dataclass(frozen=True)
class FoldAttribution:
    """Per held-out case: signed IG attribution of every input position, risks, Captum's delta."""

    case_ids: list[str]
    fold: int
    attributions: np.ndarray  # (n_cases, n_positions), positions = blocks concatenated
    risk: np.ndarray  # (n_cases,) risk of the case's own omics
    baseline_risk: np.ndarray  # (n_cases,) risk of the training-fold mean omics (same bag)
    delta: np.ndarray  # (n_cases,) Captum's convergence delta: sum(attr) - (risk - baseline)
    baseline: np.ndarray  # (n_positions,) the training-fold mean input


def load_fold(
    checkpoint: str | Path,
    *,
    cohort: str,
    model_name: str,
    omics_parquet: str,
    families_json: str,
    bags_h5: str | None,
    device: torch.device,
    clinical_tsv: str | None = None,
) -> FoldModel:
    """Rebuild one fold's model from its checkpoint, with the inputs training gave it.

    The cases, standardisation (fitted on the fold's training cases) and omics layout come from
    the checkpoint's meta through training.setup's own functions, so they cannot drift from it.
    A *_clinical model's last block is its clinical covariates (`clinical_tsv`), family
    'clinical', whose "genes" are the encoded columns (`age`, `sex_female`, ...).
    """
    if is_linear_floor(model_name) or "omic" not in model_inputs(model_name):
        raise ValueError(
            f"attribution: {model_name!r} is not a deep model that reads omics (linear floors' "
            "coefficients are their attribution)"
        )
    ckpt = read_checkpoint(checkpoint, model_name)
    meta = ckpt["meta"]
    job = FoldJob(
        cohort=cohort,
        model_name=model_name,
        fold=int(meta["fold"]),
        seed=int(meta["seed"]),
        dev=device,
        out=Path(checkpoint).parent,
        p=dict(meta["params"]),
        modalities=frozenset(model_inputs(model_name)),
        bags_h5=bags_h5,
        omics_parquet=omics_parquet,
        families_json=families_json,
        clinical_tsv=clinical_tsv or "",
        splits_tsv="",
    )
    train_ids = [str(c) for c in meta["train_case_ids"]]
    test_ids = [str(c) for c in meta["test_case_ids"]]
    cases = FoldCases(
        train_ids=train_ids,
        test_ids=test_ids,
        n_val=len(meta.get("inner_val_case_ids") or []),
        excluded={},
    )
    inputs = load_inputs(job, cases, checkpoint_path_scaler(ckpt, str(checkpoint)))
    try:
        if inputs.omic_input != meta.get("omic_input", "families"):
            raise ValueError(
                f"{checkpoint}: trained with omic_input {meta.get('omic_input')!r}, "
                f"rebuilt as {inputs.omic_input!r}"
            )
        model, _ = build_model(job, inputs)
        try:
            model.load_state_dict(ckpt["state_dict"])
        except RuntimeError as err:
            raise ValueError(
                f"{checkpoint}: weights do not fit the model rebuilt from {families_json} "
                f"(were the omics rebuilt since training?): {err}"
            ) from None
    except Exception:
        if inputs.store is not None:
            inputs.store.close()
        raise
    model.eval()
    model.requires_grad_(False)
    families = read_families_json(families_json)
    if inputs.omic_input == "unique_genes":
        block_columns = [list(dict.fromkeys(c for cols in families.values() for c in cols))]
        block_families = None
    else:
        block_columns, block_families = list(families.values()), list(families)
    if inputs.clinical_stats is not None:
        if inputs.clinical_stats != meta.get("clinical"):
            raise ValueError(
                f"{checkpoint}: the clinical covariates' encoding refitted from {clinical_tsv} "
                "differs from the one stored at training (was the clinical table changed?)"
            )
        block_columns.append(clinical_columns(inputs.clinical_stats))
        block_families = None if block_families is None else [*block_families, "clinical"]
    return FoldModel(model, job, inputs, train_ids, test_ids, block_columns, block_families)


def risk_function(model: torch.nn.Module, path: torch.Tensor | None) -> Callable[..., torch.Tensor]:
    """Batched risk (-sum_t S(t), higher = worse) of omics rows with one case's bag held fixed.

    Captum calls it with (B, g_i) tensors, one per omics block; the models score one case per
    forward, so each row is scored in turn. The bag is closed over rather than passed through
    Captum's additional_forward_args, which would repeat a tensor along dim 0 for every step.
    """

    def forward(*blocks: torch.Tensor) -> torch.Tensor:
        rows = [-model(path, [b[i] for b in blocks]).surv.sum() for i in range(blocks[0].shape[0])]
        return torch.stack(rows)

    return forward


def integrated_gradients(
    model: torch.nn.Module,
    path: torch.Tensor | None,
    x: Sequence[torch.Tensor],
    baseline: Sequence[torch.Tensor],
    n_steps: int,
    internal_batch_size: int | None = None,
) -> tuple[list[torch.Tensor], float]:
    """Captum IG of one case's risk w.r.t. its omics blocks (each (g_i,)); return them and delta."""
    ig = IntegratedGradients(risk_function(model, path))
    attr, delta = ig.attribute(
        tuple(t.unsqueeze(0) for t in x),
        baselines=tuple(t.unsqueeze(0) for t in baseline),
        n_steps=n_steps,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    return [a.squeeze(0).detach() for a in attr], float(delta.reshape(-1)[0])


def attribute_fold(fm: FoldModel, n_steps: int, internal_batch_size: int = 8) -> FoldAttribution:
    """IG of every held-out case of the fold against the mean omics of its training cases."""
    dev = fm.job.dev
    train_blocks = omics_blocks_for(fm.job, fm.inputs, fm.train_ids)
    test_blocks = omics_blocks_for(fm.job, fm.inputs, fm.test_ids)
    base = [torch.from_numpy(b.mean(axis=0)).to(dev) for b in train_blocks]
    n_pos = sum(b.shape[1] for b in test_blocks)
    attrs = np.zeros((len(fm.test_ids), n_pos), dtype=np.float64)
    risk, base_risk, delta = (np.zeros(len(fm.test_ids)) for _ in range(3))
    for i, case in enumerate(fm.test_ids):
        path = None
        if fm.job.need_path and fm.inputs.bags is not None:
            path = torch.from_numpy(fm.inputs.bags[case]).to(dev)
        x = [torch.from_numpy(b[i]).to(dev) for b in test_blocks]
        a, delta[i] = integrated_gradients(
            fm.model, path, x, base, n_steps, min(internal_batch_size, n_steps)
        )
        attrs[i] = torch.cat(a).double().cpu().numpy()
        with torch.no_grad():
            f = risk_function(fm.model, path)
            risk[i] = float(f(*(t.unsqueeze(0) for t in x))[0])
            base_risk[i] = float(f(*(t.unsqueeze(0) for t in base))[0])
    return FoldAttribution(
        case_ids=list(fm.test_ids),
        fold=fm.job.fold,
        attributions=attrs,
        risk=risk,
        baseline_risk=base_risk,
        delta=delta,
        baseline=torch.cat(base).double().cpu().numpy(),
    )
