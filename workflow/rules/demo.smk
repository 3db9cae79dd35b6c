# The embedded synthetic demo cohort (`data_source: demo`): slides, omics and clinical tables
# generated from a seed (mmsurv.demo).


if config["data_source"] == "demo":

    rule demo_cohort:
        """Generate the synthetic demo cohorts (slides, omics, clinical) from a seed."""
        input:
            sheet=config["samples"],
            gene_families=config["gene_families"],
        output:
            slides=list(sheet().path_of.values()),
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
