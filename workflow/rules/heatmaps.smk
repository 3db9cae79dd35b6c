# Per-patch heatmaps of the highest- and lowest-risk held-out cases, one job per cohort x model
# (heatmaps.models; auto = every trained model with per-patch scores). Caption:
# workflow/report/heatmaps.rst.


rule heatmaps:
    """Score every patch of the chosen held-out cases with the fold model that held each
    out; draw them over the thumbnails; write CLAM-style h5 and GeoJSON per slide."""
    input:
        unpack(get_heatmap_inputs),
    output:
        slides=directory(f"{OUT}/{{cohort}}/heatmaps/{{model}}/slides"),
        figures=report(
            directory(f"{OUT}/{{cohort}}/heatmaps/{{model}}/figures"),
            patterns=["{case}.png"],
            caption="../report/heatmaps.rst",
            category="Heatmaps",
            subcategory="{cohort}",
            labels={"model": "{model}", "case": "{case}"},
        ),
        pdf=f"{OUT}/{{cohort}}/heatmaps/{{model}}/heatmaps.pdf",
        cases=f"{OUT}/{{cohort}}/heatmaps/{{model}}/cases.tsv",
    log:
        f"{OUT}/logs/heatmaps/{{cohort}}/{{model}}.log",
    benchmark:
        f"{OUT}/benchmarks/heatmaps/{{cohort}}/{{model}}.tsv"
    conda:
        "../../envs/mmsurv.yaml"
    threads: res("evaluate", "threads")
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
    params:
        heatmaps=job_settings("heatmaps"),
        reader=config["tiling"]["reader"],
        slide_files=get_heatmap_slide_files,
    script:
        "../../scripts/heatmaps.py"
