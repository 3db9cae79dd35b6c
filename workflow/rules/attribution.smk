# Gene-family attribution: Integrated Gradients (Captum) of each held-out case's risk over its
# omics, one job per cohort x model (attribution.models; auto = every trained deep model that
# reads omics). Caption: workflow/report/attribution.rst.


rule attribution:
    """Attribute each held-out case's risk to its genes and gene families, against its fold's
    training-mean omics, with the checkpoint of the fold that held it out."""
    input:
        unpack(get_attribution_inputs),
    output:
        genes=f"{OUT}/{{cohort}}/attribution/{{model}}/genes.tsv",
        families=f"{OUT}/{{cohort}}/attribution/{{model}}/families.tsv",
        cases=f"{OUT}/{{cohort}}/attribution/{{model}}/cases.tsv.gz",
        summary=f"{OUT}/{{cohort}}/attribution/{{model}}/summary.json",
        bars=report(
            f"{OUT}/{{cohort}}/attribution/{{model}}/bars.png",
            caption="../report/attribution.rst",
            category="Attribution",
            subcategory="{cohort}",
            labels={"cohort": "{cohort}", "model": "{model}"},
        ),
    log:
        f"{OUT}/logs/attribution/{{cohort}}/{{model}}.log",
    benchmark:
        f"{OUT}/benchmarks/attribution/{{cohort}}/{{model}}.tsv"
    conda:
        "../../envs/mmsurv.yaml"
    threads: res("evaluate", "threads")
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
    params:
        attribution=job_settings("attribution"),
        device=config["training"]["device"],
    script:
        "../../scripts/attribution.py"
