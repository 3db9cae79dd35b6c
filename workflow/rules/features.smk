# Patch features with the configured encoder. One job encodes a batch of slides
# (features.slides_per_job) with the encoder loaded once, so a GPU allocation does not idle
# between slides, while outputs stay one file per slide so reruns and resumes stay per slide.
# Snakemake cannot derive a list of per-slide outputs from one wildcard, hence one rule per batch.


for _cohort, _batch, _slides in feature_batches():

    rule:
        name:
            f"extract_features_{_cohort}_{_batch}".replace("-", "_")
        input:
            slides=[samples.loc[s, "path"] for s in _slides],
            coords=[f"{OUT}/{_cohort}/patches/{s}.h5" for s in _slides],
        output:
            [f"{OUT}/{_cohort}/features/{s}.h5" for s in _slides],
        log:
            f"{OUT}/logs/features/{_cohort}/batch{_batch}.log",
        benchmark:
            f"{OUT}/benchmarks/features/{_cohort}/batch{_batch}.tsv"
        conda:
            "../../envs/mmsurv.yaml"
        threads: res("features", "threads")
        resources:
            mem_mb=res("features", "mem_mb"),
            runtime=res("features", "runtime"),
            gpu=res("features", "gpu"),
        params:
            features=config["features"],
            reader=config["tiling"]["reader"],
        script:
            "../../scripts/extract_features.py"
