# Patch features with the configured encoder. One job encodes a batch of slides
# (features.slides_per_job) with the encoder loaded once and one tile loader over all of them,
# which reads the next slide while the current one is encoded, so a GPU allocation does not idle
# between slides; outputs stay one file per slide (written atomically). A slide that fails
# (truncated file, more than features.max_bad_tile_fraction unreadable tiles) fails the job with
# an error naming it, after the other slides are encoded; Snakemake then removes the batch's
# outputs, but finished slides stay under features/.resume/ and a rerun reuses them.
# See docs/slides.md.
# Snakemake cannot derive a list of per-slide outputs from one wildcard, hence one rule per batch.
# With features.weights set, every batch needs that file; with features.weights_url also set,
# rule download_encoder_weights fetches it (sha256-verified) first.
ENCODER_WEIGHTS = (
    [config["features"]["weights"]] if config["features"].get("weights") else []
)


for _cohort, _batch, _slides in feature_batches():

    rule:
        name:
            f"extract_features_{_cohort}_{_batch}".replace("-", "_")
        input:
            slides=[samples.loc[s, "path"] for s in _slides],
            coords=[f"{OUT}/{_cohort}/patches/{s}.h5" for s in _slides],
            weights=ENCODER_WEIGHTS,
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


if ENCODER_WEIGHTS and config["features"].get("weights_url"):

    rule download_encoder_weights:
        """Download the encoder weights (e.g. torchvision's ImageNet ResNet-50), sha256-checked."""
        output:
            ENCODER_WEIGHTS[0],
        log:
            f"{OUT}/logs/download_encoder_weights.log",
        localrule: True
        conda:
            "../../envs/mmsurv.yaml"
        threads: 1
        params:
            url=config["features"]["weights_url"],
            sha256=config["features"].get("weights_sha256"),
            download=config.get("download", {}),
        script:
            "../../scripts/fetch_weights.py"
