# Input acquisition. `data_source: demo` generates the embedded synthetic cohort; `tcga` lists
# the open diagnostic slides of each cohort on the GDC and downloads them (docs/tcga.md);
# `local` with byo.tables converts MCAT-style tables (docs/byo.md).


if config["data_source"] == "demo":

    rule demo_cohort:
        """Generate the synthetic demo cohorts (slides, omics, clinical) from a seed."""
        input:
            sheet=config["samples"],
            gene_families=config["gene_families"],
        output:
            slides=list(samples["path"]),
            clinical=expand(config["clinical"], cohort=COHORTS),
            omics=expand(config["omics"], cohort=COHORTS),
        log:
            f"{OUT}/logs/demo_cohort.log",
        benchmark:
            f"{OUT}/benchmarks/demo_cohort.tsv"
        conda:
            "../../envs/slides.yaml"
        threads: res("demo", "threads")
        resources:
            mem_mb=res("demo", "mem_mb"),
            runtime=res("demo", "runtime"),
        params:
            cohorts=COHORTS,
            seed=config["demo"]["seed"],
            genes_per_family=config["demo"]["genes_per_family"],
            clinical={c: config["clinical"].format(cohort=c) for c in COHORTS},
            omics={c: config["omics"].format(cohort=c) for c in COHORTS},
        script:
            "../../scripts/demo_cohort.py"


if config["data_source"] == "tcga":
    from mmsurv.gdc import UUID_PATTERN, cohort_projects

    DOWNLOAD = config["download"]
    SLIDE_DIR = DOWNLOAD["slide_dir"].rstrip("/")

    # At most download.max_parallel downloads at a time, unless the command line gives
    # --resources gdc_downloads=N (a global resource Snakemake honours for every executor).
    if "gdc_downloads" not in workflow.global_resources:
        workflow.register_resource("gdc_downloads", DOWNLOAD["max_parallel"])

    rule gdc_slide_manifest:
        """List a cohort's open-access diagnostic slides on the GDC: file id, size, md5, case."""
        output:
            manifest=f"{OUT}/manifest/{{cohort}}.tsv",
        log:
            f"{OUT}/logs/gdc_manifest/{{cohort}}.log",
        localrule: DOWNLOAD["local"]
        resources:
            mem_mb=res("download", "mem_mb"),
            runtime=res("download", "runtime"),
        params:
            projects=lambda wildcards: cohort_projects(wildcards.cohort, DOWNLOAD),
        script:
            "../../scripts/gdc_manifest.py"

    rule gdc_slide_sheet:
        """Join the cohort manifests into the slide sheet (config `samples`) that drives the DAG."""
        input:
            manifests=expand(f"{OUT}/manifest/{{cohort}}.tsv", cohort=COHORTS),
        output:
            sheet=config["samples"],
        log:
            f"{OUT}/logs/gdc_slide_sheet.log",
        localrule: True
        params:
            slide_dir=SLIDE_DIR,
        script:
            "../../scripts/gdc_sheet.py"

    rule manifest:
        """Target of step 1 of a TCGA run: query the GDC and write the slide sheet."""
        input:
            config["samples"],
        localrule: True

    rule download_slide:
        """Download one slide from the GDC data endpoint: resumable, retried, size and md5 checked."""
        output:
            slide=f"{SLIDE_DIR}/{{file_id}}/{{slide}}.svs",
        log:
            f"{OUT}/logs/download/{{file_id}}/{{slide}}.log",
        benchmark:
            f"{OUT}/benchmarks/download/{{file_id}}/{{slide}}.tsv"
        wildcard_constraints:
            file_id=UUID_PATTERN,
        retries: DOWNLOAD["job_retries"]
        localrule: DOWNLOAD["local"]
        threads: 1
        resources:
            gdc_downloads=1,
            mem_mb=res("download", "mem_mb"),
            runtime=res("download", "runtime"),
        params:
            gdc_file=get_gdc_file,
        script:
            "../../scripts/gdc_download.py"


if config["data_source"] == "local" and BYO_TABLES:

    rule byo_tables:
        """Convert a cohort's MCAT-style table into the clinical and omics tables (docs/byo.md)."""
        input:
            table=get_byo_table,
            gene_families=config["gene_families"],
        output:
            clinical=config["clinical"],
            omics=config["omics"],
            report=f"{OUT}/{{cohort}}/gene_family_report.tsv",
        log:
            f"{OUT}/logs/byo/{{cohort}}_tables.log",
        conda:
            "../../envs/mmsurv.yaml"
        resources:
            mem_mb=res("bags", "mem_mb"),
            runtime=res("bags", "runtime"),
        script:
            "../../scripts/byo_tables.py"

    if BYO["slide_dir"] is not None:

        rule byo_slide_sheet:
            """Write the slide sheet (config `samples`): each table's slide ids in byo.slide_dir."""
            input:
                tables=[BYO_TABLES[c] for c in COHORTS],
            output:
                sheet=config["samples"],
            log:
                f"{OUT}/logs/byo/slide_sheet.log",
            localrule: True
            conda:
                "../../envs/mmsurv.yaml"
            params:
                cohorts=COHORTS,
                slide_dir=BYO["slide_dir"],
                require_slides=bool(PATH_MODELS),
            script:
                "../../scripts/byo_sheet.py"
