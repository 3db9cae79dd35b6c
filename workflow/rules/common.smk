# Configuration and sheet loading, validated once at parse time, plus the get_* input functions.
import os
import re

from snakemake.utils import validate

from mmsurv.io import read_slide_sheet
from mmsurv.model_catalog import model_inputs

validate(config, schema="../schemas/config.schema.yaml")

# Jobs import mmsurv from this checkout, also inside per-rule conda envs (--sdm conda), which
# hold the dependencies but not the package itself.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in [f"{workflow.basedir}/workflow", os.environ.get("PYTHONPATH")] if p
)


envvars:
    "PYTHONPATH",


OUT = config["outdir"]
COHORTS = list(config["cohorts"])
MODELS = list(config["training"]["models"])
FOLDS = list(range(config["splits"]["n_folds"]))

if config["evaluation"]["km_model"] not in MODELS:
    raise ValueError(
        f"config key evaluation.km_model={config['evaluation']['km_model']!r} is not one of "
        f"training.models {MODELS}"
    )

samples = read_slide_sheet(config["samples"], COHORTS)
validate(samples, schema="../schemas/samples.schema.yaml")


def _alternatives(values):
    return "|".join(re.escape(str(v)) for v in values)


RESOURCE_DEFAULTS = {"threads": 1, "mem_mb": 4000, "runtime": 60, "gpu": 0}


def res(stage, key):
    """A resource of a stage from config (resources.<stage>), else resources.default."""
    table = config.get("resources", {})
    value = table.get(stage, {}).get(key, table.get("default", {}).get(key))
    return RESOURCE_DEFAULTS[key] if value is None else value


def slides_of(cohort):
    """The slide ids of one cohort, in sheet order (sorted by slide id)."""
    return list(samples.loc[samples["cohort"] == cohort, "slide_id"])


def get_slide_path(wildcards):
    """Path of one slide from the sheet; the slide must belong to the cohort in the path."""
    row = samples.loc[wildcards.slide]
    if row["cohort"] != wildcards.cohort:
        raise ValueError(
            f"slide {wildcards.slide} belongs to cohort {row['cohort']}, not {wildcards.cohort}"
        )
    return row["path"]


def get_slide_mpp(wildcards):
    """User-supplied level-0 MPP for a slide without one in its file (None if not given)."""
    mpp = samples.loc[wildcards.slide, "mpp"]
    return None if mpp != mpp else float(mpp)  # NaN check without numpy


def feature_batches():
    """(cohort, batch index, slide ids): the slides one feature-extraction job encodes."""
    size = config["features"]["slides_per_job"]
    batches = []
    for cohort in COHORTS:
        slides = slides_of(cohort)
        for b, start in enumerate(range(0, len(slides), size)):
            batches.append((cohort, b, slides[start : start + size]))
    return batches


def get_cohort_features(wildcards):
    """Feature files of every slide of the cohort."""
    return [
        f"{OUT}/{wildcards.cohort}/features/{s}.h5" for s in slides_of(wildcards.cohort)
    ]


def get_cohort_slide_table(wildcards):
    """(case_id, slide_id) pairs of the cohort, in sheet order, for building case bags."""
    rows = samples.loc[samples["cohort"] == wildcards.cohort, ["case_id", "slide_id"]]
    return [tuple(r) for r in rows.itertuples(index=False)]


def get_train_inputs(wildcards):
    """Inputs of one cancer x model x fold job; pathology bags only for models that use them."""
    cohort = wildcards.cohort
    inputs = {
        "omics": f"{OUT}/{cohort}/omics.parquet",
        "families": f"{OUT}/{cohort}/families.json",
        "clinical": config["clinical"].format(cohort=cohort),
        "splits": f"{OUT}/{cohort}/splits.tsv",
    }
    if "path" in model_inputs(wildcards.model):
        inputs["bags"] = f"{OUT}/{cohort}/bags.h5"
    return inputs


def predictions_of(cohort, model):
    """Out-of-fold prediction files of one model on one cohort, all folds."""
    return [f"{OUT}/{cohort}/train/{model}/fold{k}/predictions.parquet" for k in FOLDS]


def get_all_predictions(wildcards=None):
    """Every cancer x model x fold prediction file."""
    return [p for c in COHORTS for m in MODELS for p in predictions_of(c, m)]


def get_km_predictions(wildcards):
    """Predictions of the Kaplan-Meier model for one cohort."""
    return predictions_of(wildcards.cohort, config["evaluation"]["km_model"])


def get_final_outputs():
    """The final targets: tables, KM figures and the run summary."""
    return [
        f"{OUT}/tables/cindex.csv",
        f"{OUT}/tables/cindex.md",
        f"{OUT}/run_summary.md",
        *[f"{OUT}/figures/km_{c}.png" for c in COHORTS],
    ]
