"""Which inputs each registered model consumes, importable without torch.

The workflow reads this at parse time (every SLURM job re-parses the Snakefile, so importing
torch there would cost seconds per job). `register_model` checks every model class against it.
"""

from __future__ import annotations

MODEL_INPUTS: dict[str, frozenset[str]] = {
    "snn": frozenset({"omic"}),
    "snn_trans": frozenset({"omic"}),
    "attn_mil": frozenset({"path"}),
    "clam_sb": frozenset({"path"}),
    "transmil": frozenset({"path"}),
    "porpoise": frozenset({"path", "omic"}),
    "hfbsurv": frozenset({"path", "omic"}),
    "mcat": frozenset({"path", "omic"}),
    "dualtrans": frozenset({"path", "omic"}),
    "ours": frozenset({"path", "omic"}),
    "ours_wo_simme": frozenset({"path", "omic"}),
    "ours_wo_bdca": frozenset({"path", "omic"}),
    "ours_wo_ot": frozenset({"path", "omic"}),
    # The clinical covariates (training.clinical_covariates) as one more omics block.
    "snn_clinical": frozenset({"omic", "clinical"}),
    "porpoise_clinical": frozenset({"path", "omic", "clinical"}),
    "ours_clinical": frozenset({"path", "omic", "clinical"}),
    # Linear floors (models/coxnet_omic.py, coxnet_path.py, cox_clinical.py): scikit-survival
    # Cox models fitted in training/linear.py, shown in Table 1 under "Linear floor".
    "coxnet_omic": frozenset({"omic"}),
    "coxnet_path": frozenset({"path"}),
    "cox_clinical": frozenset({"clinical"}),
}

LINEAR_FLOORS: tuple[str, ...] = ("coxnet_omic", "coxnet_path", "cox_clinical")
"""The linear floor models, in Table 1 order (not torch modules; no epochs, no bins learnt)."""

HEATMAP_MODELS: tuple[str, ...] = (
    "attn_mil",
    "clam_sb",
    "transmil",
    "porpoise",
    "mcat",
    "dualtrans",
    "ours",
    "ours_wo_simme",
    "ours_wo_bdca",
    "ours_wo_ot",
    "porpoise_clinical",
    "ours_clinical",
)
"""Models with per-patch scores (`SurvModel.patch_scores`, a `patch_score_caption`): the ones
rule heatmaps draws under `heatmaps.models: auto`. tests/test_heatmaps.py checks the classes."""

ATTRIBUTION_MODELS: tuple[str, ...] = tuple(
    m for m, inputs in MODEL_INPUTS.items() if "omic" in inputs and m not in LINEAR_FLOORS
)
"""Deep models that read omics: the ones rule attribution explains (Integrated Gradients over
their omics inputs) under `attribution.models: auto`. The linear floors are left out (their
coefficients are their attribution). tests/test_attribution.py checks it against MODEL_INPUTS."""


def model_inputs(name: str) -> frozenset[str]:
    """The inputs ('path', 'omic', 'clinical') a model reads; unknown names list the known ones."""
    if name not in MODEL_INPUTS:
        raise ValueError(f"Unknown model {name!r}; known models: {', '.join(sorted(MODEL_INPUTS))}")
    return MODEL_INPUTS[name]


def is_linear_floor(name: str) -> bool:
    """Whether `name` is a linear floor model (trained by training/linear.py, not by epochs)."""
    return name in LINEAR_FLOORS
