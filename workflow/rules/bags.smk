# Case bags (slides concatenated), gene-family tables and cross-validation folds, per cohort.


rule case_bags:
    """Concatenate the slide features of each case into one bag per case."""
    input:
        get_cohort_features,
    output:
        f"{OUT}/{{cohort}}/bags.h5",
    log:
        f"{OUT}/logs/bags/{{cohort}}.log",
    conda:
        "../../envs/mmsurv.yaml"
    threads: res("bags", "threads")
    resources:
        mem_mb=res("bags", "mem_mb"),
        runtime=res("bags", "runtime"),
    params:
        slide_table=get_cohort_slide_table,
    script:
        "../../scripts/case_bags.py"


rule omics_bags:
    """Keep the genes of the six families; standardisation happens per training fold."""
    input:
        omics=config["omics"],
        gene_families=config["gene_families"],
    output:
        table=f"{OUT}/{{cohort}}/omics.parquet",
        families=f"{OUT}/{{cohort}}/families.json",
        missing=f"{OUT}/{{cohort}}/omics_missing.json",
    log:
        f"{OUT}/logs/bags/{{cohort}}_omics.log",
    conda:
        "../../envs/mmsurv.yaml"
    threads: res("bags", "threads")
    resources:
        mem_mb=res("bags", "mem_mb"),
        runtime=res("bags", "runtime"),
    params:
        impute=config["bags"]["omics_impute"],
    script:
        "../../scripts/omics_bags.py"


rule splits:
    """K folds over the cases with every modality the models need; the cases left out, why."""
    input:
        clinical=config["clinical"],
        omics=f"{OUT}/{{cohort}}/omics.parquet",
        omics_missing=f"{OUT}/{{cohort}}/omics_missing.json",
        user_splits=get_split_csvs,
        sheet=get_awaited_sheet,  # params read the slide sheet
    output:
        splits=f"{OUT}/{{cohort}}/splits.tsv",
        dropped=f"{OUT}/{{cohort}}/dropped_cases.tsv",
    log:
        f"{OUT}/logs/bags/{{cohort}}_splits.log",
    conda:
        "../../envs/mmsurv.yaml"
    resources:
        mem_mb=res("bags", "mem_mb"),
        runtime=res("bags", "runtime"),
    params:
        n_folds=config["splits"]["n_folds"],
        seed=config["splits"]["seed"],
        slide_cases=lambda wc: sorted({c for c, _ in get_cohort_slide_table(wc)}),
        require_slides=bool(PATH_MODELS),
        complete_cases=not KEEP_UNIMODAL,
        site_preserved=config["splits"]["source"] == "site",
    script:
        "../../scripts/splits.py"
