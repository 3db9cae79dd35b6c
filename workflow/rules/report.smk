# Run summary: data source, encoder weights, model selection, folds and cohort sizes in one page.


rule run_summary:
    """Write what the numbers rest on (encoder weights, selection policy, cohorts) for the report."""
    input:
        table=f"{OUT}/tables/cindex.csv",
        folds=f"{OUT}/tables/cindex_folds.tsv",
        metrics=f"{OUT}/tables/metrics.csv",
        km=expand(f"{OUT}/{{cohort}}/km_stats.json", cohort=COHORTS),
        splits=expand(f"{OUT}/{{cohort}}/splits.tsv", cohort=COHORTS),
        dropped=expand(f"{OUT}/{{cohort}}/dropped_cases.tsv", cohort=COHORTS),
        omics_missing=expand(f"{OUT}/{{cohort}}/omics_missing.json", cohort=COHORTS),
    output:
        report(
            f"{OUT}/run_summary.md",
            caption="../report/run_summary.rst",
            category="Summary",
        ),
    log:
        f"{OUT}/logs/report/run_summary.log",
    conda:
        "../../envs/mmsurv.yaml"
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
    params:
        config=config,
        effective_config=EFFECTIVE_CONFIG,
    script:
        "../../scripts/run_summary.py"
