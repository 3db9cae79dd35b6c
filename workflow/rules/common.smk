# Configuration and sheet loading, validated once at parse time, plus the get_* input functions.
import copy
import os
import re

from snakemake.common.configfile import load_configfile
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from mmsurv.acquire.byo import check_byo_config, for_cohort
from mmsurv.acquire.cbioportal import cbioportal_files, study_archive_url
from mmsurv.acquire.cohort import REPORT_FILES
from mmsurv.acquire.gdc_omics import OMICS_MODALITIES, omics_settings
from mmsurv.io import read_slide_sheet
from mmsurv.config import (
    DEMO_CONFIG,
    apply_protocol,
    check_inputs_named,
    check_training_keys,
    config_error_message,
    derive_defaults,
    effective_rows,
    format_effective,
    provenance,
    sheet_error_message,
)
from mmsurv.model_catalog import HEATMAP_MODELS, MODEL_INPUTS, model_inputs
from mmsurv.model_catalog import ATTRIBUTION_MODELS
from mmsurv.scheduler import one_reevaluation_timer

# One pending scheduler wake-up instead of one more per finished job (see mmsurv/scheduler.py).
one_reevaluation_timer()

# The demo (config/config.yaml) only when no --configfile is given; otherwise the user's config
# alone, with the schema's defaults for every key it leaves out (never the demo's values).
USER_CONFIG = copy.deepcopy(workflow.config_settings.overwrite_config)
DEMO_LOADED = not workflow.config_settings.configfiles
if DEMO_LOADED:

    configfile: DEMO_CONFIG


PRESET_KEYS = apply_protocol(config, USER_CONFIG)
# training.seed replaced by training.seeds; no epoch selection on the held-out fold
check_training_keys(config)
try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as _err:
    # Snakemake's message prints the whole schema around the one useful line.
    _msg = config_error_message(_err, "workflow/schemas/config.schema.yaml")
    if _msg is None:
        raise
    raise ValueError(_msg) from None
PRESET_KEYS.update(derive_defaults(config, USER_CONFIG))
check_inputs_named(config)
EFFECTIVE_CONFIG = effective_rows(
    config,
    provenance(
        config,
        USER_CONFIG,
        load_configfile(DEMO_CONFIG) if DEMO_LOADED else None,
        PRESET_KEYS,
    ),
)
if not (workflow.remote_exec or workflow.subprocess_exec):
    logger.info(format_effective(EFFECTIVE_CONFIG, demo_loaded=DEMO_LOADED))

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
# one train job per cohort x model x fold x seed
SEEDS = list(config["training"]["seeds"])

for _model in config["training"]["per_model"]:
    if _model not in MODEL_INPUTS:
        raise ValueError(
            f"config key training.per_model.{_model}: not a model; known: {sorted(MODEL_INPUTS)}"
        )

if config["evaluation"]["km_model"] not in MODELS:
    raise ValueError(
        f"config key evaluation.km_model={config['evaluation']['km_model']!r} is not one of "
        f"training.models {MODELS}"
    )

# Models that use pathology need slides; without them a cohort may have none (genomics only).
PATH_MODELS = [m for m in MODELS if "path" in model_inputs(m)]
# acquisition.missing_policy keep_unimodal: folds over every case with survival and slides or
# omics; each training job keeps the cases its model can use (drop: complete cases only).
KEEP_UNIMODAL = config["acquisition"]["missing_policy"] == "keep_unimodal"

# Bring-your-own MCAT-style tables (data_source local, docs/byo.md).
BYO = config["byo"]
BYO_TABLES = BYO["tables"] if config["data_source"] == "local" else {}
check_byo_config(config, PATH_MODELS)

# The slide sheet drives the DAG (slides, feature batches, case bags). Everything reads it through
# sheet(), lazily, from input functions and params. With data_source tcga (or byo.slide_dir and a
# model that uses pathology) a rule writes it in the same invocation (gdc_slide_sheet,
# byo_slide_sheet), followed by the checkpoint slide_sheet (acquire.smk): until that has run,
# sheet() raises Snakemake's IncompleteCheckpointException, the jobs that asked wait for the
# checkpoint, and Snakemake evaluates them again once it has run.
SHEET_WRITER = (
    "gdc_slide_sheet"
    if config["data_source"] == "tcga"
    else (
        "byo_slide_sheet"
        if BYO_TABLES and BYO["slide_dir"] is not None and PATH_MODELS
        else None
    )
)
SHEET_READY = f"{OUT}/manifest/slide_sheet.ready"  # the checkpoint's output
# rules whose forced rerun (--forcerun, --forceall) rewrites the sheet in this invocation
SHEET_REWRITERS = {SHEET_WRITER, "gdc_slide_manifest", "slide_sheet"}


class SlideSheet:
    """The validated slide sheet and the lookups jobs need, built once per version of the file."""

    def __init__(self, table):
        """Index `table` (read_slide_sheet's frame) by cohort, slide and feature batch."""
        self.table = table
        # slide ids, and (case_id, slide_id) pairs, in sheet order
        self.by_cohort = {c: [] for c in COHORTS}
        self.case_slides = {c: [] for c in COHORTS}
        self.cohort_of, self.path_of, self.mpp_of = {}, {}, {}
        columns = ("slide_id", "cohort", "case_id", "path", "mpp")
        for slide, cohort, case, path, mpp in zip(*(table[c] for c in columns)):
            self.by_cohort.setdefault(cohort, []).append(slide)
            self.case_slides.setdefault(cohort, []).append((case, slide))
            self.cohort_of[slide], self.path_of[slide] = cohort, path
            self.mpp_of[slide] = None if mpp is None or mpp != mpp else float(mpp)
        # the batches extract_features encodes (features.smk) as {(cohort, batch): slide ids}
        # and {slide id: batch}; batch is a string, as the {batch} wildcard
        size = config["features"]["slides_per_job"]
        self.batches = {
            (cohort, str(b)): self.by_cohort[cohort][start : start + size]
            for cohort in COHORTS
            for b, start in enumerate(range(0, len(self.by_cohort[cohort]), size))
        }
        self.slide_batch = {s: b for (_, b), ids in self.batches.items() for s in ids}


_SHEET_CACHE = {}
# absolute: validate() resolves a relative schema path only while the workflow is parsed
SAMPLES_SCHEMA = os.path.join(workflow.basedir, "workflow/schemas/samples.schema.yaml")


def load_sheet():
    """The slide sheet at config `samples`, read and validated once per (path, mtime, size)."""
    path = config["samples"]
    try:
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        key = (path, None, None)
    if _SHEET_CACHE.get("key") != key:
        table = read_slide_sheet(path, COHORTS, require_slides=bool(PATH_MODELS))
        try:
            validate(table, schema=SAMPLES_SCHEMA)
        except WorkflowError as err:
            # Snakemake names only the row number; name the sheet, the slide and the column.
            msg = sheet_error_message(
                err, table, path, "workflow/schemas/samples.schema.yaml"
            )
            if msg is None:
                raise
            raise ValueError(msg) from None
        _SHEET_CACHE.update(key=key, value=SlideSheet(table))
    return _SHEET_CACHE["value"]


def sheet_pending():
    """Whether the sheet's checkpoint is still to write it in this invocation."""
    if not os.path.exists(config["samples"]):
        return True
    dag = workflow.dag_settings
    if workflow.remote_exec or workflow.subprocess_exec or dag is None:
        return False
    return bool(dag.forceall or SHEET_REWRITERS & set(dag.forcerun))


def sheet():
    """The slide sheet (SlideSheet); inside input functions, waits for its checkpoint."""
    if SHEET_WRITER and sheet_pending():
        checkpoints.slide_sheet.get()  # IncompleteCheckpointException until it has run
    return load_sheet()


def get_awaited_sheet(wildcards):
    """No input once the sheet exists; until then its checkpoint (for rules whose params read it)."""
    sheet()
    return []


# Parse-time check of an existing (or required) sheet: a bad sheet stops the run at once.
if SHEET_WRITER is None or os.path.exists(config["samples"]):
    load_sheet()


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
    return sheet().by_cohort.get(cohort, [])


def get_slide_path(wildcards):
    """Path of one slide from the sheet; the slide must belong to the cohort in the path."""
    slides = sheet()
    if wildcards.slide not in slides.cohort_of:
        raise ValueError(
            f"slide {wildcards.slide} is not in the slide sheet {config['samples']}"
        )
    cohort = slides.cohort_of[wildcards.slide]
    if cohort != wildcards.cohort:
        raise ValueError(
            f"slide {wildcards.slide} belongs to cohort {cohort}, not {wildcards.cohort}"
        )
    return slides.path_of[wildcards.slide]


def get_slide_mpp(wildcards):
    """User-supplied level-0 MPP for a slide without one in its file (None if not given)."""
    return sheet().mpp_of[wildcards.slide]


def feature_batch_dir(cohort, batch):
    """The directory one feature-extraction job writes its slides' h5 files into."""
    return f"{OUT}/{cohort}/features/.batches/{batch}"


def get_batch_slides(wildcards):
    """Slide ids of one feature-extraction batch, in sheet order."""
    key = (wildcards.cohort, wildcards.batch)
    batches = sheet().batches
    if key not in batches:
        raise ValueError(
            f"cohort {wildcards.cohort} has no feature batch {wildcards.batch} "
            f"(features.slides_per_job={config['features']['slides_per_job']})"
        )
    return batches[key]


def get_batch_inputs(wildcards):
    """Slide files and tile coords of one feature-extraction batch."""
    slides = get_batch_slides(wildcards)
    path_of = sheet().path_of
    return {
        "slides": [path_of[s] for s in slides],
        "coords": [f"{OUT}/{wildcards.cohort}/patches/{s}.h5" for s in slides],
    }


def get_slide_batch_dir(wildcards):
    """The batch directory holding one slide's features; the slide must be of the cohort."""
    get_slide_path(wildcards)  # checks the slide is in the sheet and of the cohort
    return feature_batch_dir(wildcards.cohort, sheet().slide_batch[wildcards.slide])


def get_cohort_features(wildcards):
    """Feature files of every slide of the cohort."""
    return [
        f"{OUT}/{wildcards.cohort}/features/{s}.h5" for s in slides_of(wildcards.cohort)
    ]


def get_cohort_slide_table(wildcards):
    """(case_id, slide_id) pairs of the cohort, in sheet order, for building case bags."""
    return sheet().case_slides.get(wildcards.cohort, [])


def get_byo_table(wildcards):
    """The MCAT-style table of one cohort (byo.tables)."""
    return BYO_TABLES[wildcards.cohort]


def get_split_csvs(wildcards):
    """The user's split CSVs of a cohort (splits.source user), else none."""
    if config["splits"]["source"] != "user":
        return []
    split_dir = for_cohort(BYO["splits_dir"], wildcards.cohort)
    return [f"{split_dir}/splits_{k}.csv" for k in FOLDS]


def get_train_inputs(wildcards):
    """Inputs of one cancer x model x fold x seed job; pathology bags only for models using them."""
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
    """Out-of-fold prediction files of one model on one cohort, all seeds x folds."""
    return [
        f"{OUT}/{cohort}/train/{model}/seed{s}/fold{k}/predictions.parquet"
        for s in SEEDS
        for k in FOLDS
    ]


def get_all_predictions(wildcards=None):
    """Every cancer x model x seed x fold prediction file."""
    return [p for c in COHORTS for m in MODELS for p in predictions_of(c, m)]


def get_all_missing_predictions(wildcards=None):
    """Every job's predictions_missing.parquet (the missing-modality table's input)."""
    return [
        p.replace("predictions.parquet", "predictions_missing.parquet")
        for p in get_all_predictions()
    ]


def get_km_predictions(wildcards):
    """Predictions of the Kaplan-Meier model for one cohort."""
    return predictions_of(wildcards.cohort, config["evaluation"]["km_model"])


def get_km_train_risks(wildcards):
    """Training cases' risks of the KM model's fold runs (the honest KM's cutpoints)."""
    return [
        p.replace("predictions.parquet", "train_risks.parquet")
        for p in get_km_predictions(wildcards)
    ]


def explained_models(key, catalog):
    """Trained models a post-training stage (config `key`.models) runs for: `auto` = every
    trained model in `catalog`; a list keeps its trained models (the others are skipped with a
    warning, so the demo's short lists survive a smaller training.models) and refuses any
    model outside `catalog`."""
    chosen = config[key]["models"]
    if chosen == "auto":
        return [m for m in MODELS if m in catalog]
    unsupported = [m for m in chosen if m not in catalog]
    if unsupported:
        raise ValueError(
            f"config key {key}.models: {unsupported} cannot be used; choose from {list(catalog)}"
        )
    untrained = [m for m in chosen if m not in MODELS]
    if untrained:
        logger.warning(f"{key}.models: skipping {untrained} (not in training.models)")
    return [m for m in chosen if m in MODELS]


def heatmap_models():
    """Models to draw heatmaps for: every trained one with per-patch scores under `auto`."""
    return explained_models("heatmaps", HEATMAP_MODELS)


heatmap_models()  # heatmaps.models naming a model without per-patch scores stops the parse


def job_settings(section):
    """A config section as one job's params, without its `models` list: adding a model to
    the list must not change (and rerun) the jobs of the models already there."""
    return {k: v for k, v in config[section].items() if k != "models"}


def clinical_input(cohort, model):
    """{"clinical": the cohort's clinical table} for a model that reads a clinical block
    (the *_clinical models' covariates), else {}."""
    if "clinical" in model_inputs(model):
        return {"clinical": config["clinical"].format(cohort=cohort)}
    return {}


def get_heatmap_inputs(wildcards):
    """Inputs of one heatmaps job: the model's first-seed fold runs (predictions,
    checkpoints) and the cohort's bags, omics, features (coords) and slides."""
    cohort, model = wildcards.cohort, wildcards.model
    runs = [f"{OUT}/{cohort}/train/{model}/seed{SEEDS[0]}/fold{k}" for k in FOLDS]
    slides = slides_of(cohort)
    inputs = {
        "predictions": [f"{r}/predictions.parquet" for r in runs],
        "checkpoints": [f"{r}/checkpoint.pt" for r in runs],
        "bags": f"{OUT}/{cohort}/bags.h5",
        "omics": f"{OUT}/{cohort}/omics.parquet",
        "families": f"{OUT}/{cohort}/families.json",
        "features": [f"{OUT}/{cohort}/features/{s}.h5" for s in slides],
        "slides": [sheet().path_of[s] for s in slides],
    }
    return {**inputs, **clinical_input(cohort, model)}


def get_heatmap_slide_files(wildcards):
    """Slide id -> slide file of every slide of the cohort (the heatmaps' thumbnails)."""
    return {s: sheet().path_of[s] for s in slides_of(wildcards.cohort)}


def heatmap_outputs():
    """The heatmaps' PDF and case table of every cohort x heatmap model."""
    return [
        f"{OUT}/{c}/heatmaps/{m}/{name}"
        for c in COHORTS
        for m in heatmap_models()
        for name in ("heatmaps.pdf", "cases.tsv")
    ]


def attribution_models():
    """Models whose omics attribution explains: every trained deep omics model under `auto`."""
    return explained_models("attribution", ATTRIBUTION_MODELS)


attribution_models()  # attribution.models naming a model that reads no omics stops the parse


def get_attribution_inputs(wildcards):
    """Inputs of one attribution job: the model's first-seed fold checkpoints, the cohort's
    omics and families, and its bags when the model reads pathology."""
    cohort, model = wildcards.cohort, wildcards.model
    inputs = {
        "checkpoints": [
            f"{OUT}/{cohort}/train/{model}/seed{SEEDS[0]}/fold{k}/checkpoint.pt"
            for k in FOLDS
        ],
        "omics": f"{OUT}/{cohort}/omics.parquet",
        "families": f"{OUT}/{cohort}/families.json",
    }
    if "path" in model_inputs(model):
        inputs["bags"] = f"{OUT}/{cohort}/bags.h5"
    return {**inputs, **clinical_input(cohort, model)}


def attribution_outputs():
    """The attribution tables and bar chart of every cohort x attribution model."""
    return [
        f"{OUT}/{c}/attribution/{m}/{name}"
        for c in COHORTS
        for m in attribution_models()
        for name in ("genes.tsv", "families.tsv", "bars.png")
    ]


def paired_outputs():
    """Rule paired_table's outputs when it is planned (more than one model), else []."""
    if len(MODELS) <= 1:
        return []
    return [f"{OUT}/tables/paired.csv", f"{OUT}/tables/paired.md"]


def paired_csv():
    """tables/paired.csv as a list (Table 1/2 § marks), empty when paired_table is not planned."""
    return paired_outputs()[:1]


def get_final_outputs(wildcards=None):
    """The final targets: c-index, Table 1/2 and metrics tables, KM figures, heatmaps, run
    summary."""
    return [
        f"{OUT}/tables/cindex.csv",
        f"{OUT}/tables/cindex.md",
        *[
            f"{OUT}/tables/{stem}.{ext}"
            for stem in ("table1_comparison", "table2_ablation")
            for ext in ("csv", "md", "tex")
        ],
        f"{OUT}/tables/metrics.csv",
        f"{OUT}/tables/metrics.md",
        f"{OUT}/tables/missing_modality.csv",
        f"{OUT}/tables/missing_modality.md",
        *paired_outputs(),
        *heatmap_outputs(),
        *attribution_outputs(),
        f"{OUT}/run_summary.md",
        *[f"{OUT}/figures/km_{c}.png" for c in COHORTS],
        *(acquisition_tables() if config["data_source"] == "tcga" else []),
    ]


def get_qc_figures(wildcards=None):
    """Segmentation QC of the cohorts whose slides are tiled (pathology models configured);
    a target of its own, so that only it waits for the slide sheet's checkpoint."""
    if not PATH_MODELS:
        return []
    return [f"{OUT}/figures/qc_{c}.jpg" for c in COHORTS if slides_of(c)]


def get_gdc_file(wildcards):
    """GDC file id, md5 and size of one slide, from the slide sheet's manifest columns."""
    row = sheet().table.loc[wildcards.slide]
    needed = ("file_id", "md5sum", "file_size")
    missing = [c for c in needed if c not in row.index or row[c] != row[c]]  # NaN
    if missing:
        raise ValueError(
            f"slide sheet {config['samples']}: slide {wildcards.slide} has no {missing}; "
            "write the sheet with `snakemake manifest --configfile config/tcga.yaml` or "
            "`python -m mmsurv.acquire.gdc manifest` (docs/tcga.md)"
        )
    if row["file_id"] != wildcards.file_id:
        raise ValueError(
            f"slide sheet {config['samples']}: slide {wildcards.slide} is GDC file "
            f"{row['file_id']}, not {wildcards.file_id} as its path says"
        )
    return {
        "file_id": row["file_id"],
        "md5sum": str(row["md5sum"]),
        "file_size": int(row["file_size"]),
    }


# TCGA omics and survival (data_source tcga, `acquisition:`; docs/tcga.md).
ACQ = config["acquisition"]
ACQ_OMICS = ACQ["omics"]
ACQ_SURVIVAL = ACQ["survival"]
OMICS_SOURCE = ACQ_OMICS["source"]
# acquisition.omics.gdc over its defaults (GDC filter values, download dir, value columns)
GDC_OMICS = omics_settings(ACQ_OMICS.get("gdc"))
TCDR_PATH = (
    f"{OUT}/downloads/TCGA-CDR-SupplementalTableS1.{ACQ_SURVIVAL['tcdr_format']}"
)


def check_acquisition_config():
    """Stop the parse, naming the keys, when the TCGA omics/survival acquisition cannot be planned."""
    problems = []
    missing = [c for c in COHORTS if c not in ACQ_OMICS["studies"]]
    if missing and cbioportal_roles():
        needed = "omics"
        if OMICS_SOURCE != "cbioportal":
            needed = "survival (source cbioportal)"
        problems.append(
            f"acquisition.omics.studies has no cBioPortal study for cohort(s) {missing} "
            f"(e.g. TCGA-BLCA: blca_tcga_pan_can_atlas_2018), needed for the {needed}"
        )
    if OMICS_SOURCE == "gdc" and ACQ_OMICS["mutations"]:
        problems.append(
            "acquisition.omics.mutations: true needs acquisition.omics.source: cbioportal "
            "(the MAF of the study archive); GDC mutation files have no rules"
        )
    for key in ("clinical", "omics"):
        if "{cohort}" not in config[key]:
            problems.append(
                f"config key `{key}` ({config[key]!r}) must contain {{cohort}}: with "
                "data_source tcga it is written per cohort by tcga_cohort_tables"
            )
    if problems:
        raise ValueError("; ".join(problems))


def cbioportal_study(cohort):
    """The cBioPortal study id of a cohort (acquisition.omics.studies)."""
    return ACQ_OMICS["studies"][cohort]


def get_study_archive(wildcards):
    """The downloaded study archive of the cohort's cBioPortal study."""
    return f"{OUT}/downloads/cbioportal/{cbioportal_study(wildcards.cohort)}.tar.gz"


def get_study_url(wildcards):
    """Download URL of one study archive (acquisition.omics.archive_url)."""
    return study_archive_url(ACQ_OMICS["archive_url"], wildcards.study)


def get_study_md5(wildcards):
    """Configured md5 of one study archive, or None (not checksum-verified)."""
    return ACQ_OMICS["md5"].get(wildcards.study)


def cbioportal_roles():
    """Study files a run unpacks: all (omics source cbioportal), else the clinical file alone
    when survival comes from cBioPortal, else none (no study is downloaded)."""
    if OMICS_SOURCE == "cbioportal":
        return list(cbioportal_files(mutations=ACQ_OMICS["mutations"]))
    return ["clinical"] if ACQ_SURVIVAL["source"] == "cbioportal" else []


def cbioportal_outputs():
    """Unpacked study files of a cohort by role (mutation files only with omics.mutations)."""
    files = cbioportal_files(mutations=ACQ_OMICS["mutations"])
    return {
        role: f"{OUT}/{{cohort}}/acquisition/cbioportal/{files[role]}"
        for role in cbioportal_roles()
    }


def gdc_omics_files(cohort):
    """Downloaded-files tables of a cohort's GDC omics (source gdc), by modality."""
    return {
        modality: f"{OUT}/{cohort}/acquisition/gdc/{modality}_files.tsv"
        for modality in OMICS_MODALITIES
    }


def acquisition_reports():
    """Report TSVs that tcga_cohort_tables writes per cohort (mmsurv.acquire.cohort.REPORT_FILES)."""
    return {
        key: f"{OUT}/{{cohort}}/acquisition/{name}"
        for key, name in REPORT_FILES.items()
    }


def get_cohort_sources(wildcards):
    """Inputs of tcga_cohort_tables: the omics (unpacked study files, or the GDC downloaded-files
    tables), the survival source, the slide sheet and the gene families."""
    unpacked = {
        role: path.format(cohort=wildcards.cohort)
        for role, path in cbioportal_outputs().items()
    }
    clinical = unpacked.pop("clinical", None)
    survival = clinical if ACQ_SURVIVAL["source"] == "cbioportal" else TCDR_PATH
    if OMICS_SOURCE == "gdc":
        unpacked.update(gdc_omics_files(wildcards.cohort))
    return {
        **unpacked,
        "survival": survival,
        "sheet": config["samples"],
        "gene_families": config["gene_families"],
    }


def acquisition_tables():
    """Cohort summary, gene-family and omics reports of every cohort (the report's tables)."""
    return [
        f"{OUT}/tables/{name}"
        for name in ("cohort_summary.tsv", "gene_family_report.tsv", "omics_report.tsv")
    ]


if config["data_source"] == "tcga":
    check_acquisition_config()
