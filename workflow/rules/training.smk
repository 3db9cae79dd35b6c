# One job per cancer x model x fold x seed (training.seeds), so a cluster trains every fold of
# every model and seed in parallel.
# The linear floors (scikit-survival Cox models) run on CPU: their jobs ask for no GPU.
from mmsurv.model_catalog import LINEAR_FLOORS
from mmsurv.training.params import model_params


rule train:
    """Train one model (one seed) on the training folds and score the held-out fold."""
    input:
        unpack(get_train_inputs),
    output:
        predictions=f"{OUT}/{{cohort}}/train/{{model}}/seed{{seed}}/fold{{fold}}/predictions.parquet",
        predictions_missing=f"{OUT}/{{cohort}}/train/{{model}}/seed{{seed}}/fold{{fold}}/predictions_missing.parquet",
        train_risks=f"{OUT}/{{cohort}}/train/{{model}}/seed{{seed}}/fold{{fold}}/train_risks.parquet",
        checkpoint=f"{OUT}/{{cohort}}/train/{{model}}/seed{{seed}}/fold{{fold}}/checkpoint.pt",
        train_log=f"{OUT}/{{cohort}}/train/{{model}}/seed{{seed}}/fold{{fold}}/train_log.tsv",
        meta=f"{OUT}/{{cohort}}/train/{{model}}/seed{{seed}}/fold{{fold}}/meta.json",
    log:
        f"{OUT}/logs/train/{{cohort}}/{{model}}/seed{{seed}}/fold{{fold}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{cohort}}/{{model}}/seed{{seed}}/fold{{fold}}.tsv"
    conda:
        "../../envs/mmsurv.yaml"
    threads: res("train", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
        gpu=lambda wc: 0 if wc.model in LINEAR_FLOORS else res("train", "gpu"),
    params:
        # this model's params only: adding a model or a seed reruns no finished job
        training=lambda wc: model_params(config["training"], wc.model),
        missing_modality="exclude" if KEEP_UNIMODAL else "error",
    script:
        "../../scripts/train.py"
