# Tissue segmentation and tiling at the target magnification, one job per slide.


rule tile_slide:
    """Segment tissue; write level-0 tile coords, the QC thumbnail and tissue GeoJSON for QuPath."""
    input:
        slide=get_slide_path,
    output:
        coords=f"{OUT}/{{cohort}}/patches/{{slide}}.h5",
        qc=f"{OUT}/{{cohort}}/qc/{{slide}}.png",
        geojson=f"{OUT}/{{cohort}}/qupath/{{slide}}.geojson",
    log:
        f"{OUT}/logs/tiling/{{cohort}}/{{slide}}.log",
    benchmark:
        f"{OUT}/benchmarks/tiling/{{cohort}}/{{slide}}.tsv"
    conda:
        "../../envs/slides.yaml"
    threads: res("tiling", "threads")
    resources:
        mem_mb=res("tiling", "mem_mb"),
        runtime=res("tiling", "runtime"),
    params:
        tiling=config["tiling"],
        fallback_mpp=get_slide_mpp,
    script:
        "../../scripts/tile_slide.py"


rule qc_sheet:
    """One image of every slide's segmentation QC per cohort, for the report."""
    input:
        qc=lambda wc: [f"{OUT}/{wc.cohort}/qc/{s}.png" for s in slides_of(wc.cohort)],
        coords=lambda wc: [
            f"{OUT}/{wc.cohort}/patches/{s}.h5" for s in slides_of(wc.cohort)
        ],
    output:
        report(
            f"{OUT}/figures/qc_{{cohort}}.jpg",
            caption="../report/qc_sheet.rst",
            category="Slide QC",
        ),
    log:
        f"{OUT}/logs/tiling/{{cohort}}_qc_sheet.log",
    conda:
        "../../envs/slides.yaml"
    resources:
        mem_mb=res("tiling", "mem_mb"),
        runtime=res("tiling", "runtime"),
    params:
        slides=lambda wc: slides_of(wc.cohort),
    script:
        "../../scripts/qc_sheet.py"
