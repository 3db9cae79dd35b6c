# Input acquisition (the demo cohort is in demo.smk). `data_source: tcga` lists
# the open diagnostic slides of each cohort on the GDC and downloads them, and downloads the
# omics (cBioPortal study archives or GDC files, acquisition.omics.source) and survival of each
# cohort (docs/tcga.md); `local` with byo.tables converts MCAT-style tables (docs/byo.md).


if config["data_source"] == "tcga":
    from mmsurv.acquire.gdc_api import cohort_projects
    from mmsurv.acquire.gdc_slides import UUID_PATTERN

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
        conda:
            "../../envs/mmsurv.yaml"
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
        conda:
            "../../envs/mmsurv.yaml"
        params:
            slide_dir=SLIDE_DIR,
        script:
            "../../scripts/gdc_sheet.py"

    rule manifest:
        """Optional target: query the GDC and write the slide sheet, to inspect it before the run."""
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
        conda:
            "../../envs/mmsurv.yaml"
        threads: 1
        resources:
            gdc_downloads=1,
            mem_mb=res("download", "mem_mb"),
            runtime=res("download", "runtime"),
        params:
            gdc_file=get_gdc_file,
        script:
            "../../scripts/gdc_download.py"

    # Omics and survival: cBioPortal PanCancer Atlas study archives (and the TCGA-CDR table),
    # downloaded like the slides, unpacked, then harmonised with the slide sheet per cohort.
    # With acquisition.omics.source gdc the study is fetched only for cBioPortal survival.
    if cbioportal_roles():

        rule download_cbioportal_study:
            """Download one cBioPortal study archive: resumable, retried, md5-checked if configured."""
            output:
                archive=f"{OUT}/downloads/cbioportal/{{study}}.tar.gz",
            log:
                f"{OUT}/logs/acquisition/download_{{study}}.log",
            wildcard_constraints:
                study=_alternatives(ACQ_OMICS["studies"].values()),
            retries: DOWNLOAD["job_retries"]
            localrule: DOWNLOAD["local"]
            conda:
                "../../envs/mmsurv.yaml"
            threads: 1
            resources:
                gdc_downloads=1,
                mem_mb=res("download", "mem_mb"),
                runtime=res("download", "runtime"),
            params:
                url=get_study_url,
                md5=get_study_md5,
                label=lambda wildcards: f"cBioPortal study {wildcards.study}",
            script:
                "../../scripts/tcga_download.py"

        rule unpack_cbioportal_study:
            """Extract only the needed files of a cohort's study archive (no path from member names)."""
            input:
                archive=get_study_archive,
            output:
                **cbioportal_outputs(),
            log:
                f"{OUT}/logs/acquisition/{{cohort}}_unpack.log",
            localrule: True
            conda:
                "../../envs/mmsurv.yaml"
            params:
                study=lambda wildcards: cbioportal_study(wildcards.cohort),
            script:
                "../../scripts/tcga_unpack.py"

    # Omics from the GDC (acquisition.omics.source gdc): per cohort one listing of the STAR-counts
    # and gene-level copy-number files, then one download job per modality.
    if OMICS_SOURCE == "gdc":

        rule gdc_omics_manifest:
            """List a cohort's open STAR-counts and gene-level copy-number files on the GDC."""
            output:
                manifest=f"{OUT}/manifest/omics/{{cohort}}.tsv",
            log:
                f"{OUT}/logs/gdc_omics_manifest/{{cohort}}.log",
            localrule: DOWNLOAD["local"]
            conda:
                "../../envs/mmsurv.yaml"
            resources:
                mem_mb=res("download", "mem_mb"),
                runtime=res("download", "runtime"),
            params:
                projects=lambda wildcards: cohort_projects(wildcards.cohort, DOWNLOAD),
                gdc=GDC_OMICS,
            script:
                "../../scripts/gdc_omics_manifest.py"

        rule download_gdc_omics:
            """Download a cohort's files of one omics modality: resumable, retried, md5-checked."""
            input:
                manifest=f"{OUT}/manifest/omics/{{cohort}}.tsv",
            output:
                files=f"{OUT}/{{cohort}}/acquisition/gdc/{{modality}}_files.tsv",
            log:
                f"{OUT}/logs/acquisition/{{cohort}}_download_{{modality}}.log",
            wildcard_constraints:
                modality=_alternatives(OMICS_MODALITIES),
            retries: DOWNLOAD["job_retries"]
            localrule: DOWNLOAD["local"]
            conda:
                "../../envs/mmsurv.yaml"
            threads: 1
            resources:
                gdc_downloads=1,
                mem_mb=res("download", "mem_mb"),
                runtime=res("download", "runtime"),
            params:
                omics_dir=GDC_OMICS["dir"].rstrip("/"),
            script:
                "../../scripts/gdc_omics_download.py"

    rule download_tcga_cdr:
        """Download the TCGA Pan-Cancer Clinical Data Resource table (survival.source tcdr)."""
        output:
            table=TCDR_PATH,
        log:
            f"{OUT}/logs/acquisition/download_tcga_cdr.log",
        retries: DOWNLOAD["job_retries"]
        localrule: DOWNLOAD["local"]
        conda:
            "../../envs/mmsurv.yaml"
        threads: 1
        resources:
            gdc_downloads=1,
            mem_mb=res("download", "mem_mb"),
            runtime=res("download", "runtime"),
        params:
            url=ACQ_SURVIVAL["tcdr_url"],
            md5=ACQ_SURVIVAL["tcdr_md5"],
            label="TCGA-CDR table",
        script:
            "../../scripts/tcga_download.py"

    rule tcga_cohort_tables:
        """Harmonise a cohort's omics and survival with its slides: clinical, omics, reports."""
        input:
            unpack(get_cohort_sources),
        output:
            **acquisition_reports(),
            clinical=config["clinical"],
            omics=config["omics"],
        log:
            f"{OUT}/logs/acquisition/{{cohort}}_tables.log",
        conda:
            "../../envs/mmsurv.yaml"
        resources:
            mem_mb=res("bags", "mem_mb"),
            runtime=res("bags", "runtime"),
        params:
            survival_source=ACQ_SURVIVAL["source"],
            transforms=ACQ_OMICS["transforms"],
            sample_types=ACQ_OMICS["sample_types"],
            missing_policy=ACQ["missing_policy"],
            omics_source=OMICS_SOURCE,
            rnaseq_value=GDC_OMICS["rnaseq"]["value"],
            cnv_value=GDC_OMICS["cnv"]["value"],
        script:
            "../../scripts/tcga_cohort.py"

    rule cohort_summary:
        """Stack the cohorts' summaries (vs the paper's case counts) and gene-family reports."""
        input:
            summaries=expand(
                f"{OUT}/{{cohort}}/acquisition/{REPORT_FILES['summary']}",
                cohort=COHORTS,
            ),
            families=expand(
                f"{OUT}/{{cohort}}/acquisition/{REPORT_FILES['gene_families']}",
                cohort=COHORTS,
            ),
            omics_reports=expand(
                f"{OUT}/{{cohort}}/acquisition/{REPORT_FILES['omics_report']}",
                cohort=COHORTS,
            ),
        output:
            summary=report(
                f"{OUT}/tables/cohort_summary.tsv",
                caption="../report/cohort_summary.rst",
                category="Cohorts",
            ),
            families=report(
                f"{OUT}/tables/gene_family_report.tsv",
                caption="../report/gene_families.rst",
                category="Cohorts",
            ),
            omics_report=report(
                f"{OUT}/tables/omics_report.tsv",
                caption="../report/omics_report.rst",
                category="Cohorts",
            ),
        log:
            f"{OUT}/logs/acquisition/cohort_summary.log",
        localrule: True
        conda:
            "../../envs/mmsurv.yaml"
        script:
            "../../scripts/tcga_cohort_summary.py"


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
        params:
            unsuffixed=BYO["unsuffixed"],
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


if SHEET_WRITER:

    # Written by gdc_slide_sheet or byo_slide_sheet in this invocation (common.smk sheet()): the
    # jobs that depend on the slides (downloads, tiling, features, case bags, QC sheets) are
    # planned once this checkpoint has run. Only then in the DAG: a run with a sheet plans as if
    # there were no checkpoint.
    checkpoint slide_sheet:
        """Mark the slide sheet as written, so that Snakemake plans the jobs of its slides."""
        input:
            config["samples"],
        output:
            touch(SHEET_READY),
        log:
            f"{OUT}/logs/slide_sheet.log",
        localrule: True
        conda:
            "../../envs/mmsurv.yaml"
        shell:
            "echo slide sheet {input:q} written > {log:q}"
