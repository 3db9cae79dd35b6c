# Patch features with the configured encoder, one job per slide (GPU from config).


rule extract_features:
    """Encode every tile of a slide; random-init encoders are recorded in the file attributes."""
    input:
        slide=get_slide_path,
        coords=f"{OUT}/{{cohort}}/patches/{{slide}}.h5",
    output:
        f"{OUT}/{{cohort}}/features/{{slide}}.h5",
    params:
        features=config["features"],
        reader=config["tiling"]["reader"],
    log:
        f"{OUT}/logs/features/{{cohort}}/{{slide}}.log",
    benchmark:
        f"{OUT}/benchmarks/features/{{cohort}}/{{slide}}.tsv"
    threads: res("features", "threads")
    resources:
        mem_mb=res("features", "mem_mb"),
        runtime=res("features", "runtime"),
        gpu=res("features", "gpu"),
    script:
        "../../scripts/extract_features.py"
