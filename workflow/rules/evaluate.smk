# c-index tables over all folds and Kaplan-Meier figures of pooled out-of-fold risk.


rule cindex_table:
    """Per-fold c-index and the mean +- std table in the paper's layout."""
    input:
        get_all_predictions(),
    output:
        folds=f"{OUT}/tables/cindex_folds.tsv",
        csv=report(
            f"{OUT}/tables/cindex.csv",
            caption="../report/cindex.rst",
            category="Tables",
        ),
        md=report(
            f"{OUT}/tables/cindex.md",
            caption="../report/cindex.rst",
            category="Tables",
        ),
    log:
        f"{OUT}/logs/evaluate/cindex_table.log",
    conda:
        "../../envs/mmsurv.yaml"
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
    params:
        models=MODELS,
        cohorts=COHORTS,
        n_folds=len(FOLDS),
    script:
        "../../scripts/cindex_table.py"


rule km_figure:
    """Kaplan-Meier curves of low vs high pooled out-of-fold risk at the maxstat cutpoint."""
    input:
        get_km_predictions,
    output:
        png=report(
            f"{OUT}/figures/km_{{cohort}}.png",
            caption="../report/km.rst",
            category="Kaplan-Meier",
        ),
        pdf=f"{OUT}/figures/km_{{cohort}}.pdf",
        stats=f"{OUT}/{{cohort}}/km_stats.json",
    log:
        f"{OUT}/logs/evaluate/km_{{cohort}}.log",
    conda:
        "../../envs/mmsurv.yaml"
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
    params:
        evaluation=config["evaluation"],
    script:
        "../../scripts/km_figure.py"
