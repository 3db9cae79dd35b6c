# Patch features with the configured encoder. One job encodes a batch of slides
# (features.slides_per_job) with the encoder loaded once and one tile loader over all of them,
# which reads the next slide while the current one is encoded, so a GPU allocation does not idle
# between slides; outputs stay one file per slide (written atomically). See docs/slides.md.
#
# Two rules, so that one rule covers every batch whatever the sheet (the DAG's cost per job then
# does not grow with it) while every slide keeps its own file and dependency:
# - extract_features ({cohort}, {batch}) writes the batch's h5 files into its own directory,
#   features/.batches/{batch}/ (a directory() output: Snakemake cannot derive a list of per-slide
#   outputs from one wildcard, but it owns a directory). Batches are the sheet's slides of a
#   cohort in order, features.slides_per_job at a time (common.smk SlideSheet.batches).
# - slide_features ({cohort}, {slide}) publishes one slide's file at features/{slide}.h5, the
#   CLAM/TRIDENT layout every consumer reads: a hard link into the batch directory, so the data
#   is stored once (a copy where the filesystem has no hard links). A localrule: it never becomes
#   a cluster job.
# A slide that fails (truncated file, more than features.max_bad_tile_fraction unreadable tiles)
# fails the batch with an error naming it, after the other slides are encoded; Snakemake then
# deletes the batch directory, but finished slides stay under features/.resume/ (outside every
# output) and a rerun of the batch, whichever batch a slide is then in, reuses them if the slide,
# tiles, encoder and settings still match (extract_features_batch's resume_dir). The same way, feature files
# of the earlier layout (one generated rule per batch, h5 written at features/{slide}.h5) are
# reused instead of encoded again once hard-linked there: `ln features/*.h5 features/.resume/`.
# With features.weights set, every batch needs that file; with features.weights_url also set,
# rule download_encoder_weights fetches it (sha256-verified) first.
ENCODER_WEIGHTS = (
    [config["features"]["weights"]] if config["features"].get("weights") else []
)


rule extract_features:
    """Encode the tiles of one batch of slides: one feature h5 per slide, in the batch directory."""
    input:
        unpack(get_batch_inputs),
        weights=ENCODER_WEIGHTS,
    output:
        directory(feature_batch_dir("{cohort}", "{batch}")),
    log:
        f"{OUT}/logs/features/{{cohort}}/batch{{batch}}.log",
    benchmark:
        f"{OUT}/benchmarks/features/{{cohort}}/batch{{batch}}.tsv"
    conda:
        "../../envs/mmsurv.yaml"
    threads: res("features", "threads")
    resources:
        mem_mb=res("features", "mem_mb"),
        runtime=res("features", "runtime"),
        gpu=res("features", "gpu"),
    params:
        slide_ids=get_batch_slides,
        resume_dir=f"{OUT}/{{cohort}}/features/.resume",
        features=config["features"],
        reader=config["tiling"]["reader"],
    script:
        "../../scripts/extract_features.py"


rule slide_features:
    """One slide's feature h5 at features/{slide}.h5: a hard link into its batch's directory."""
    input:
        get_slide_batch_dir,
    output:
        f"{OUT}/{{cohort}}/features/{{slide}}.h5",
    log:
        f"{OUT}/logs/features/{{cohort}}/slides/{{slide}}.log",
    localrule: True
    conda:
        "../../envs/mmsurv.yaml"
    # touch: the link shares the batch file's mtime, older than the directory's timestamp
    shell:
        "(ln -f {input:q}/{wildcards.slide}.h5 {output:q}"
        " || cp {input:q}/{wildcards.slide}.h5 {output:q}) 2> {log:q} && touch {output:q}"


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
