# c-index tables (all models; the paper's Table 1 and Table 2), the metrics table and the
# Kaplan-Meier figures of pooled out-of-fold risk. Captions: workflow/report/*.rst.

PUBLISHED_TABLES = {
    key: f"{workflow.basedir}/resources/published/zhang2025_{key}.csv"
    for key in ("table1", "table2")
}


rule cindex_table:
    """Per-fold c-index and the mean +- std table of every configured model."""
    input:
        get_all_predictions(),
    output:
        folds=f"{OUT}/tables/cindex_folds.tsv",
        csv=report(
            f"{OUT}/tables/cindex.csv",
            caption="../report/cindex.rst",
            category="Tables",
            subcategory="c-index, all models",
        ),
        md=report(
            f"{OUT}/tables/cindex.md",
            caption="../report/cindex.rst",
            category="Tables",
            subcategory="c-index, all models",
        ),
        prov=f"{OUT}/tables/cindex.provenance.rst",
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
        std_ddof=config["evaluation"]["std_ddof"],
        n_folds=len(FOLDS),
    script:
        "../../scripts/cindex_table.py"


rule paper_tables:
    """Table 1 (comparison) and Table 2 (ablation) in the paper's layout: CSV, Markdown, LaTeX."""
    input:
        folds=f"{OUT}/tables/cindex_folds.tsv",
        published=(
            list(PUBLISHED_TABLES.values())
            if config["evaluation"]["published"]
            else []
        ),
        paired=paired_csv(),
    output:
        table1_csv=report(
            f"{OUT}/tables/table1_comparison.csv",
            caption="../report/table1.rst",
            category="Tables",
            subcategory="Table 1 (comparison)",
        ),
        table1_md=report(
            f"{OUT}/tables/table1_comparison.md",
            caption="../report/table1.rst",
            category="Tables",
            subcategory="Table 1 (comparison)",
        ),
        table1_tex=report(
            f"{OUT}/tables/table1_comparison.tex",
            caption="../report/table1.rst",
            category="Tables",
            subcategory="Table 1 (comparison)",
        ),
        table2_csv=report(
            f"{OUT}/tables/table2_ablation.csv",
            caption="../report/table2.rst",
            category="Tables",
            subcategory="Table 2 (ablation)",
        ),
        table2_md=report(
            f"{OUT}/tables/table2_ablation.md",
            caption="../report/table2.rst",
            category="Tables",
            subcategory="Table 2 (ablation)",
        ),
        table2_tex=report(
            f"{OUT}/tables/table2_ablation.tex",
            caption="../report/table2.rst",
            category="Tables",
            subcategory="Table 2 (ablation)",
        ),
        prov=f"{OUT}/tables/paper_tables.provenance.rst",
    log:
        f"{OUT}/logs/evaluate/paper_tables.log",
    conda:
        "../../envs/mmsurv.yaml"
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
    params:
        models=MODELS,
        cohorts=COHORTS,
        std_ddof=config["evaluation"]["std_ddof"],
        published_cohorts=(
            config["evaluation"]["published_cohorts"]
            if config["evaluation"]["published"]
            else {}
        ),
    script:
        "../../scripts/paper_tables.py"


rule metrics_table:
    """Time-dependent AUC, integrated Brier score and bootstrap CI of the pooled c-index."""
    input:
        predictions=get_all_predictions(),
        meta=[
            p.replace("predictions.parquet", "meta.json")
            for p in get_all_predictions()
        ],
    output:
        csv=report(
            f"{OUT}/tables/metrics.csv",
            caption="../report/metrics.rst",
            category="Tables",
            subcategory="More metrics",
        ),
        md=report(
            f"{OUT}/tables/metrics.md",
            caption="../report/metrics.rst",
            category="Tables",
            subcategory="More metrics",
        ),
        folds=f"{OUT}/tables/metrics_folds.tsv",
        prov=f"{OUT}/tables/metrics.provenance.rst",
    log:
        f"{OUT}/logs/evaluate/metrics_table.log",
    conda:
        "../../envs/mmsurv.yaml"
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
    params:
        models=MODELS,
        cohorts=COHORTS,
        std_ddof=config["evaluation"]["std_ddof"],
        evaluation={
            k: config["evaluation"][k]
            for k in (
                "horizons",
                "horizon_quantiles",
                "ibs_range",
                "ibs_points",
                "n_bootstrap",
                "seed",
                "ci_level",
            )
        },
    script:
        "../../scripts/metrics_table.py"


rule missing_modality_table:
    """c-index when a modality is missing: both inputs, pathology only, genomics only."""
    input:
        get_all_missing_predictions(),
    output:
        csv=report(
            f"{OUT}/tables/missing_modality.csv",
            caption="../report/missing_modality.rst",
            category="Tables",
            subcategory="Missing modality",
        ),
        md=report(
            f"{OUT}/tables/missing_modality.md",
            caption="../report/missing_modality.rst",
            category="Tables",
            subcategory="Missing modality",
        ),
    log:
        f"{OUT}/logs/evaluate/missing_modality_table.log",
    conda:
        "../../envs/mmsurv.yaml"
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
    params:
        models=MODELS,
        cohorts=COHORTS,
        std_ddof=config["evaluation"]["std_ddof"],
    script:
        "../../scripts/missing_modality_table.py"


rule paired_table:
    """Each model against the KM model: paired test over fold runs, paired bootstrap over cases."""
    input:
        folds=f"{OUT}/tables/cindex_folds.tsv",
        predictions=get_all_predictions(),
    output:
        csv=report(
            f"{OUT}/tables/paired.csv",
            caption="../report/paired.rst",
            category="Tables",
            subcategory="Paired comparison",
        ),
        md=f"{OUT}/tables/paired.md",
    log:
        f"{OUT}/logs/evaluate/paired_table.log",
    conda:
        "../../envs/mmsurv.yaml"
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
    params:
        reference=config["evaluation"]["km_model"],
        n_bootstrap=config["evaluation"]["n_bootstrap"],
        seed=config["evaluation"]["seed"],
        ci_level=config["evaluation"]["ci_level"],
    script:
        "../../scripts/paired_table.py"


rule km_figure:
    """KM of low vs high out-of-fold risk: maxstat cutpoint on the held-out risks (optimistic)
    beside each fold's cutpoint from its training cases (honest)."""
    input:
        predictions=get_km_predictions,
        train_risks=get_km_train_risks,
    output:
        png=report(
            f"{OUT}/figures/km_{{cohort}}.png",
            caption="../report/km.rst",
            category="Kaplan-Meier",
        ),
        pdf=f"{OUT}/figures/km_{{cohort}}.pdf",
        stats=f"{OUT}/{{cohort}}/km_stats.json",
        prov=f"{OUT}/figures/km_{{cohort}}.provenance.rst",
    log:
        f"{OUT}/logs/evaluate/km_{{cohort}}.log",
    conda:
        "../../envs/mmsurv.yaml"
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
    params:
        evaluation={
            k: config["evaluation"][k]
            for k in ("minprop", "maxprop", "n_perm", "seed")
        },
    script:
        "../../scripts/km_figure.py"
