# One job per cancer x model x fold, so a cluster trains every fold of every model in parallel.
# The linear floors (scikit-survival Cox models) run on CPU: their jobs ask for no GPU.
from mmsurv.model_catalog import LINEAR_FLOORS


rule train:
    """Train one model on the training folds and score the held-out fold."""
    input:
        unpack(get_train_inputs),
    output:
        predictions=f"{OUT}/{{cohort}}/train/{{model}}/fold{{fold}}/predictions.parquet",
        checkpoint=f"{OUT}/{{cohort}}/train/{{model}}/fold{{fold}}/checkpoint.pt",
        train_log=f"{OUT}/{{cohort}}/train/{{model}}/fold{{fold}}/train_log.tsv",
        meta=f"{OUT}/{{cohort}}/train/{{model}}/fold{{fold}}/meta.json",
    log:
        f"{OUT}/logs/train/{{cohort}}/{{model}}/fold{{fold}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{cohort}}/{{model}}/fold{{fold}}.tsv"
    conda:
        "../../envs/mmsurv.yaml"
    threads: res("train", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
        gpu=lambda wc: 0 if wc.model in LINEAR_FLOORS else res("train", "gpu"),
    params:
        training=config["training"],
        missing_modality="exclude" if KEEP_UNIMODAL else "error",
    script:
        "../../scripts/train.py"
