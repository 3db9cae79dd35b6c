# mmsurv: multimodal (pathology + genomics) survival prediction, Zhang et al. 2025.
# Wiring only: every rule lives in workflow/rules/, every computation in workflow/mmsurv/.
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/constraints.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/acquire.smk"
include: "workflow/rules/tiling.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/bags.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/attribution.smk"
include: "workflow/rules/heatmaps.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        get_final_outputs,
        get_qc_figures,
