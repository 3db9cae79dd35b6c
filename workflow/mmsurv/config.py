"""The effective config: the user's keys, else a named protocol preset, else the schema default.

The demo config (config/config.yaml) is loaded only when the user gives no config file, so a
user's partial config never inherits demo values. Every leaf key of the effective config is
labelled with where its value came from, for the log at parse time and the run summary.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

DEMO_CONFIG = "config/config.yaml"

# Named protocols: `training.protocol: <name>` fills these keys unless the user set them.
# mcat = MCAT's published choices (mahmoodlab/MCAT main.py and utils/core_utils.py).
PROTOCOLS: dict[str, dict[str, Any]] = {
    "default": {},
    "mcat": {
        "training": {
            "epochs": 20,
            "lr": 2.0e-4,
            "weight_decay": 1.0e-5,
            "grad_accum": 32,
            "n_bins": 4,
            "alpha_surv": 0.0,
            "weighted_sampling": True,
            "model_selection": "last_epoch",
            # Time bins from all patients' uncensored times (leaks test times into the edges).
            "bins_fit_on": "all",
            # MCAT's lambda_reg: loss_surv / gc + lambda_reg * sum|w|, per case.
            "l1_scaling": "per_case",
            "l1_scope": "all",  # MCAT's reg_type "omic" maps to l1_reg_all: every parameter
            # MCAT regularises only its SNN (results/ICCV/SNNsm_..._reg1e-04_...).
            "per_model": {"snn": {"l1_reg": 1.0e-4}},
            "omic_input": "unique_genes",  # the signature genes once each (dataset_csv_sig)
            "partial_step": False,  # no step for the leftover group; its gradient carries over
            "path_norm": "none",  # MCAT and CLAM feed the raw encoder features
        },
        "evaluation": {"std_ddof": 0},  # np.std over folds
    },
}

SOURCE_USER = "user"
SOURCE_DEMO = "demo"
SOURCE_DEFAULT = "default"

# training.model_selection: which epoch's weights score the held-out fold. last_epoch and
# inner_val never look at the held-out fold; the leaky one picks the epoch with the best
# held-out c-index, on purpose and by this explicit name only (its results say "leaky").
LEAKY_SELECTION = "best_test_epoch_leaky"
MODEL_SELECTIONS = ("last_epoch", "inner_val", LEAKY_SELECTION)


def model_selection_error(value: Any, key: str = "training.model_selection") -> str | None:
    """The message refusing a model_selection value (None when allowed), naming key and values."""
    if value in MODEL_SELECTIONS:
        return None
    return (
        f"config key {key}={value!r} is not allowed; choose one of {list(MODEL_SELECTIONS)}. "
        "Selecting the epoch (or early stopping) on the held-out fold inflates its c-index; "
        "inner_val selects on a validation split of the training folds instead. If you insist "
        f"on held-out selection, write {LEAKY_SELECTION}: every table and figure then says "
        "'leaky' and prints the gap to the last epoch"
    )


def check_training_keys(config: Mapping[str, Any]) -> None:
    """Refuse the replaced training.seed and held-out-fold epoch selection, before the schema."""
    training = config.get("training") or {}
    if "seed" in training:
        raise ValueError(
            f"training.seed was replaced by training.seeds: [{training['seed']}] "
            "(one train job per cohort x model x fold x seed)"
        )
    checks = [("training.model_selection", training.get("model_selection", "last_epoch"))]
    for model, over in (training.get("per_model") or {}).items():
        if isinstance(over, Mapping) and "model_selection" in over:
            checks.append((f"training.per_model.{model}.model_selection", over["model_selection"]))
    for key, value in checks:
        msg = model_selection_error(value, key)
        if msg is not None:
            raise ValueError(msg)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaf values of a nested mapping by dotted path (an empty mapping is a leaf)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path in a nested dict, creating the intermediate mappings."""
    *parents, leaf = path.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = copy.deepcopy(value)


def _set_by(path: str, paths: Mapping[str, Any]) -> bool:
    """Whether `paths` (flattened config) sets `path` itself or a key below it."""
    return any(p == path or p.startswith(path + ".") for p in paths)


def apply_protocol(config: dict[str, Any], user: Mapping[str, Any]) -> dict[str, str]:
    """Fill the keys of `training.protocol`'s preset that the user did not set; return them.

    The returned mapping is dotted path -> "protocol <name>", for the provenance labels.
    """
    name = (config.get("training") or {}).get("protocol", "default")
    if name not in PROTOCOLS:
        raise ValueError(
            f"config key training.protocol={name!r} is not a known protocol; "
            f"choose one of {sorted(PROTOCOLS)}"
        )
    user_paths = flatten(user)
    applied: dict[str, str] = {}
    for path, value in flatten(PROTOCOLS[name]).items():
        if _set_by(path, user_paths):
            continue  # the user's own value wins over the preset
        _set_path(config, path, value)
        applied[path] = f"protocol {name}"
    return applied


def derive_defaults(config: dict[str, Any], user: Mapping[str, Any]) -> dict[str, str]:
    """Fill keys that follow from others (a BYO run needs no paths); return them with why.

    Bring-your-own tables (`byo.tables`) imply `data_source: local`, the converted tables'
    paths under `{outdir}/byo/`, and with `byo.splits_dir` the user's folds. With
    `data_source: tcga`, each TCGA cohort without `acquisition.omics.studies` gets its cBioPortal
    PanCancer Atlas study (`tcga_projects`). A `km_model`
    left at its default but not trained becomes the first trained model. Keys the user set
    are never touched.
    """
    user_paths = flatten(user)
    derived: dict[str, str] = {}

    def put(path: str, value: Any, why: str) -> None:
        if _set_by(path, user_paths):
            return
        _set_path(config, path, value)
        derived[path] = f"derived: {why}"

    byo = config.get("byo") or {}
    if byo.get("tables"):
        put("data_source", "local", "byo.tables given")
        out = config.get("outdir", "results")
        put("samples", f"{out}/byo/slides.tsv", "byo.tables given")
        put("clinical", f"{out}/byo/{{cohort}}/clinical.tsv", "byo.tables given")
        put("omics", f"{out}/byo/{{cohort}}/omics.tsv", "byo.tables given")
        if byo.get("splits_dir"):
            put("splits.source", "user", "byo.splits_dir given")
    if config.get("data_source") == "tcga":
        _derive_studies(config, put)
    models = list((config.get("training") or {}).get("models") or [])
    km = (config.get("evaluation") or {}).get("km_model")
    if models and km is not None and km not in models:
        put("evaluation.km_model", models[0], f"the default {km!r} is not trained")
    return derived


def _derive_studies(config: dict[str, Any], put: Callable[[str, Any, str], None]) -> None:
    """Each TCGA cohort without a cBioPortal study gets its PanCancer Atlas study."""
    from mmsurv.tcga_projects import pancan_study

    omics = (config.get("acquisition") or {}).get("omics") or {}
    studies = omics.get("studies") or {}
    for cohort in config.get("cohorts") or []:
        study = pancan_study(cohort)
        if cohort not in studies and study is not None:
            put(
                f"acquisition.omics.studies.{cohort}",
                study,
                f"the PanCancer Atlas study of GDC project {cohort}",
            )


def check_inputs_named(config: Mapping[str, Any]) -> None:
    """Refuse a config that names no input source or paths, saying which keys to set."""
    missing = [k for k in ("data_source", "samples", "clinical", "omics") if k not in config]
    if missing:
        raise ValueError(
            f"config keys {missing} are required (data_source: demo | tcga | local, and the "
            "slide sheet, clinical and omics paths), unless byo.tables names MCAT-style tables, "
            "from which they follow"
        )


def provenance(
    config: Mapping[str, Any],
    user: Mapping[str, Any],
    demo: Mapping[str, Any] | None,
    preset: Mapping[str, str],
) -> dict[str, str]:
    """Where each leaf came from: user, protocol preset or derived (`preset`), demo, default."""
    user_paths, demo_paths = flatten(user), flatten(demo or {})
    out = {}
    for path in flatten(config):
        if path in user_paths:
            out[path] = SOURCE_USER
        elif path in preset:
            out[path] = preset[path]
        elif path in demo_paths:
            out[path] = SOURCE_DEMO
        else:
            out[path] = SOURCE_DEFAULT
    return out


def effective_rows(config: Mapping[str, Any], sources: Mapping[str, str]) -> list[list[str]]:
    """[key, value as JSON, source] for every leaf of the effective config, in config order."""
    return [
        [path, json.dumps(value, default=str), sources.get(path, SOURCE_DEFAULT)]
        for path, value in flatten(config).items()
    ]


def format_effective(rows: list[list[str]], *, demo_loaded: bool) -> str:
    """The effective config as log lines, with a header saying which config files were read."""
    head = (
        f"Effective configuration (no --configfile given: the demo {DEMO_CONFIG}; "
        "keys it lacks take the schema's defaults):"
        if demo_loaded
        else "Effective configuration (your --configfile/--config; keys you left out take "
        "the schema's defaults, never the demo's):"
    )
    width = max((len(r[0]) for r in rows), default=0)
    return "\n".join([head] + [f"  {k:<{width}} = {v}  [{s}]" for k, v, s in rows])


def _validation_error(err: BaseException) -> Any:
    """The jsonschema ValidationError behind Snakemake's WorkflowError from `validate`, or None."""
    seen: BaseException | None = err
    while seen is not None:
        if type(seen).__name__ == "ValidationError" and hasattr(seen, "absolute_path"):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _short(text: str, limit: int = 300) -> str:
    """`text` cut to `limit` characters (a jsonschema message may quote a whole section)."""
    return text if len(text) <= limit else text[:limit] + " …"


def config_error_message(err: BaseException, schema_file: str) -> str | None:
    """A few lines for a config that fails the schema: the key, the allowed keys, the schema.

    Snakemake's own message prints the whole schema (about 1,800 lines) around the useful
    line. Returns None when `err` does not wrap a schema violation.
    """
    error = _validation_error(err)
    if error is None:
        return None
    path = ".".join(str(p) for p in error.absolute_path)
    where = f"under `{path}`" if path else "at the top level"
    props = error.schema.get("properties") if isinstance(error.schema, Mapping) else None
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping) and props:
        unknown = sorted(str(k) for k in error.instance if k not in props)
        return (
            f"config: unknown key(s) {unknown} {where}; allowed keys there: "
            f"{', '.join(props)}. Every key, its type and default: {schema_file}"
        )
    return f"config key `{path or '(top level)'}`: {_short(error.message)} (schema: {schema_file})"


def sheet_error_message(
    err: BaseException, sheet: Any, sheet_file: str, schema_file: str
) -> str | None:
    """The slide sheet's file, slide id and column for a row that fails the sample schema.

    Snakemake says only "Error validating row <i> of data frame" (i counts the validated
    frame's rows, `sheet`'s order). Returns None when `err` does not wrap a schema violation.
    """
    error = _validation_error(err)
    found = re.search(r"row (\d+) of data frame", str(err))
    if error is None or found is None or int(found.group(1)) >= len(sheet):
        return None
    row = sheet.iloc[int(found.group(1))]
    column = ".".join(str(p) for p in error.absolute_path) or "(row)"
    return (
        f"slide sheet {sheet_file}: slide {row['slide_id']} (cohort {row['cohort']}), column "
        f"`{column}`: {_short(error.message)} (schema: {schema_file})"
    )
