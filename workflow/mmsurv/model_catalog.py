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
    # Linear floors (models/coxnet_omic.py, coxnet_path.py, cox_clinical.py): scikit-survival
    # Cox models fitted in training/linear.py, shown in Table 1 under "Linear floor".
    "coxnet_omic": frozenset({"omic"}),
    "coxnet_path": frozenset({"path"}),
    "cox_clinical": frozenset({"clinical"}),
}

LINEAR_FLOORS: tuple[str, ...] = ("coxnet_omic", "coxnet_path", "cox_clinical")
"""The linear floor models, in Table 1 order (not torch modules; no epochs, no bins learnt)."""


def model_inputs(name: str) -> frozenset[str]:
    """The inputs ('path', 'omic', 'clinical') a model reads; unknown names list the known ones."""
    if name not in MODEL_INPUTS:
        raise ValueError(f"Unknown model {name!r}; known models: {', '.join(sorted(MODEL_INPUTS))}")
    return MODEL_INPUTS[name]


def is_linear_floor(name: str) -> bool:
    """Whether `name` is a linear floor model (trained by training/linear.py, not by epochs)."""
    return name in LINEAR_FLOORS
