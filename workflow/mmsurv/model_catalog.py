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
}


def model_inputs(name: str) -> frozenset[str]:
    """The modalities ({'path', 'omic'}) a model consumes; unknown names list the known ones."""
    if name not in MODEL_INPUTS:
        raise ValueError(f"Unknown model {name!r}; known models: {', '.join(sorted(MODEL_INPUTS))}")
    return MODEL_INPUTS[name]
