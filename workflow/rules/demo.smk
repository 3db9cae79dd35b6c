# The embedded synthetic demo cohort (`data_source: demo`): slides, omics and clinical tables
# generated from a seed (mmsurv.demo), and beside the clinical table the hidden truth: risk per
# case (truth.tsv), planted region share per slide (regions.tsv), regions per slide (GeoJSON).


if config["data_source"] == "demo":
    from mmsurv.demo import region_paths

    # {cohort: {"truth", "table", "regions": {slide_id: path}}}, slides from the sheet
    DEMO_HIDDEN = {
        c: region_paths(config["clinical"].format(cohort=c), sheet().by_cohort[c])
        for c in COHORTS
    }

    rule demo_cohort:
        """Generate the synthetic demo cohorts (slides, omics, clinical, hidden truth) from a seed."""
        input:
            sheet=config["samples"],
            gene_families=config["gene_families"],
        output:
            slides=list(sheet().path_of.values()),
            clinical=expand(config["clinical"], cohort=COHORTS),
            omics=expand(config["omics"], cohort=COHORTS),
            truth=[str(DEMO_HIDDEN[c]["truth"]) for c in COHORTS],
            region_tables=[str(DEMO_HIDDEN[c]["table"]) for c in COHORTS],
            regions=[
                str(f) for c in COHORTS for f in DEMO_HIDDEN[c]["regions"].values()
            ],
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
