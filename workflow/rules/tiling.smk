# Tissue segmentation and tiling at the target magnification, one job per slide.


rule tile_slide:
    """Segment tissue and write level-0 coords of non-overlapping tiles at the target magnification."""
    input:
        slide=get_slide_path,
    output:
        coords=f"{OUT}/{{cohort}}/patches/{{slide}}.h5",
        qc=f"{OUT}/{{cohort}}/qc/{{slide}}.png",
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
