"""A user's config means what it says: schema defaults (never the demo's), presets, provenance."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mmsurv.config import (
    PROTOCOLS,
    apply_protocol,
    check_inputs_named,
    derive_defaults,
    effective_rows,
    flatten,
    format_effective,
    provenance,
)
from mmsurv.training.params import model_params

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
ROW = re.compile(r"^  (\S+)\s+= (.*)  \[([^\]]+)\]$")

# What a user who has never seen the demo writes: inputs, one model, nothing else.
PARTIAL = {
    "cohorts": ["DEMO-BLCA"],
    "data_source": "demo",
    "samples": "config/demo/slides.tsv",
    "clinical": "results/demo_data/{cohort}/clinical.tsv",
    "omics": "results/demo_data/{cohort}/omics.tsv",
    "training": {"models": ["snn"]},
    "evaluation": {"km_model": "snn"},
}


def _schema_default(path: str) -> Any:
    """The schema's default at a dotted path (walking properties, $ref and section defaults)."""
    node: dict[str, Any] = SCHEMA
    value: Any = None
    for key in path.split("."):
        if "$ref" in node:
            node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
        node = node["properties"][key]
        if "$ref" in node:
            node = {**SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]], **node}
        value = node.get("default")
    return value


def _copy_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(
        REPO,
        repo,
        ignore=shutil.ignore_patterns(".git", ".venv", "results*", ".snakemake", "test-artifacts"),
    )
    return repo


def _effective(output: str) -> dict[str, tuple[str, str]]:
    """key -> (value as JSON, source) from the parse-time log of a snakemake run."""
    rows = {}
    for line in output.splitlines():
        if m := ROW.match(line):
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def _dry_run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_flatten_and_provenance_label_every_leaf() -> None:
    config = {"a": 1, "b": {"c": 2, "d": {"e": 3}}, "f": {}}
    assert flatten(config) == {"a": 1, "b.c": 2, "b.d.e": 3, "f": {}}
    sources = provenance(config, {"a": 1}, {"b": {"c": 9}}, {"b.d.e": "protocol mcat"})
    assert sources == {"a": "user", "b.c": "demo", "b.d.e": "protocol mcat", "f": "default"}
    rows = effective_rows(config, sources)
    assert rows[0] == ["a", "1", "user"] and rows[-1] == ["f", "{}", "default"]
    assert "b.d.e = 3  [protocol mcat]" in format_effective(rows, demo_loaded=False)


def test_protocol_fills_only_what_the_user_left_out() -> None:
    user = {"training": {"protocol": "mcat", "epochs": 3, "per_model": {"snn": {"l1_reg": 0.5}}}}
    config = {"training": {"protocol": "mcat", "epochs": 3, "per_model": {"snn": {"l1_reg": 0.5}}}}
    applied = apply_protocol(config, user)
    assert config["training"]["epochs"] == 3  # the user's value wins
    assert config["training"]["per_model"] == {"snn": {"l1_reg": 0.5}}
    assert config["training"]["grad_accum"] == 32 and config["training"]["bins_fit_on"] == "all"
    assert config["evaluation"]["std_ddof"] == 0
    assert "training.epochs" not in applied and applied["training.grad_accum"] == "protocol mcat"
    preset = flatten(PROTOCOLS["mcat"])
    assert set(applied) == set(preset) - {"training.epochs", "training.per_model.snn.l1_reg"}


def test_unknown_protocol_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="training.protocol='mcta'.*default.*mcat"):
        apply_protocol({"training": {"protocol": "mcta"}}, {})


def test_partial_config_takes_schema_defaults_not_the_demo(tmp_path: Path) -> None:
    repo = _copy_repo(tmp_path)
    (repo / "mine.yaml").write_text(yaml.safe_dump(PARTIAL))
    proc = _dry_run(repo, "--configfile", "mine.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = _effective(proc.stdout + proc.stderr)
    assert rows, "no effective configuration in the parse-time log"
    assert not [k for k, (_, src) in rows.items() if src == "demo"], "demo values leaked in"
    for key, value in flatten(PARTIAL).items():
        assert rows[key][1] == "user" and json.loads(rows[key][0]) == value, key
    defaults = {k: v for k, (v, src) in rows.items() if src == "default"}
    # The two values the issue saw inherited from the demo (5 epochs, accumulation 2).
    assert defaults["training.epochs"] == "20" and defaults["training.grad_accum"] == "32"
    for key, value in defaults.items():
        assert json.loads(value) == _schema_default(key), key
    # Only the configured model is trained (the demo would have added 12 more).
    assert re.search(r"^train\s+5$", proc.stdout, flags=re.M), proc.stdout


def test_no_configfile_means_the_demo_and_says_so(tmp_path: Path) -> None:
    repo = _copy_repo(tmp_path)
    proc = _dry_run(repo, "--config", "run_name=mine")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "no --configfile given: the demo config/config.yaml" in out
    rows = _effective(out)
    assert rows["run_name"] == ('"mine"', "user")
    demo = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    assert rows["training.epochs"] == (str(demo["training"]["epochs"]), "demo")
    assert rows["cohorts"][1] == "demo" and rows["training.protocol"][1] == "default"


def test_mcat_protocol_is_expanded_and_labelled(tmp_path: Path) -> None:
    repo = _copy_repo(tmp_path)
    config = {**PARTIAL, "training": {"models": ["snn"], "protocol": "mcat", "epochs": 4}}
    (repo / "mcat.yaml").write_text(yaml.safe_dump(config))
    proc = _dry_run(repo, "--configfile", "mcat.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = _effective(proc.stdout + proc.stderr)
    assert rows["training.epochs"] == ("4", "user")
    assert rows["training.grad_accum"] == ("32", "protocol mcat")
    assert rows["training.bins_fit_on"] == ('"all"', "protocol mcat")
    assert rows["evaluation.std_ddof"] == ("0", "protocol mcat")
    assert rows["training.per_model.snn.l1_reg"] == ("0.0001", "protocol mcat")


def test_per_model_keys_override_the_shared_ones_for_that_model_only() -> None:
    training = {
        "models": ["snn", "mcat"],
        "l1_reg": 0.0,
        "epochs": 20,
        "model_kwargs": {"mcat": {"dropout": 0.1}},
        "per_model": {"snn": {"l1_reg": 1.0e-4}},
    }
    snn, mcat = model_params(training, "snn"), model_params(training, "mcat")
    assert snn["l1_reg"] == 1.0e-4 and mcat["l1_reg"] == 0.0 and snn["epochs"] == 20
    assert snn["model_kwargs"] == {} and mcat["model_kwargs"] == {"dropout": 0.1}
    assert "per_model" not in snn
    with pytest.raises(ValueError, match=r"training.per_model.snn: unknown training keys \['l2'\]"):
        model_params({"per_model": {"snn": {"l2": 1}}}, "snn")
    with pytest.raises(ValueError, match="per_model.snn.*cannot differ"):
        model_params({"per_model": {"snn": {"seed": 3}}}, "snn")


def test_adding_a_model_or_a_seed_leaves_a_train_jobs_params_unchanged() -> None:
    # the train rule's params; Snakemake reruns every job whose params changed
    before = {"models": ["snn"], "seeds": [1], "epochs": 5, "model_kwargs": {"snn": {"d": 1}}}
    after = {
        **before,
        "models": ["snn", "mcat"],
        "seeds": [1, 2],
        "model_kwargs": {"snn": {"d": 1}, "mcat": {"d": 2}},
        "per_model": {"mcat": {"epochs": 9}},
    }
    assert model_params(after, "snn") == model_params(before, "snn")
    assert "models" not in model_params(after, "snn") and "seeds" not in model_params(after, "snn")
    assert model_params(after, "mcat")["epochs"] == 9


def test_byo_tables_imply_the_source_paths_and_folds_unless_the_user_set_them() -> None:
    config = {
        "outdir": "out",
        "byo": {"tables": {"A": "a.csv"}, "splits_dir": {"A": "splits/a"}},
        "splits": {"source": "make"},
        "training": {"models": ["snn"]},
        "evaluation": {"km_model": "ours"},
    }
    user = {"byo": config["byo"], "training": {"models": ["snn"]}, "clinical": "mine/{cohort}.tsv"}
    config["clinical"] = "mine/{cohort}.tsv"
    derived = derive_defaults(config, user)
    assert config["data_source"] == "local" and config["omics"] == "out/byo/{cohort}/omics.tsv"
    assert config["clinical"] == "mine/{cohort}.tsv" and "clinical" not in derived
    assert config["splits"]["source"] == "user" and config["evaluation"]["km_model"] == "snn"
    assert derived["evaluation.km_model"] == "derived: the default 'ours' is not trained"
    check_inputs_named(config)
    with pytest.raises(ValueError, match=r"\['samples', 'clinical', 'omics'\] are required"):
        check_inputs_named({"data_source": "local"})


def _schema_error(data: Any, schema: str) -> Exception:
    """The error Snakemake's own `validate` raises for `data` (as common.smk calls it)."""
    from snakemake.utils import validate

    with pytest.raises(Exception) as info:
        validate(data, schema=str(REPO / "workflow" / "schemas" / schema))
    return info.value


def test_an_unknown_key_is_named_with_the_allowed_keys_in_a_few_lines(tmp_path: Path) -> None:
    repo = _copy_repo(tmp_path)
    proc = _dry_run(repo, "--config", "trainng=1")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "unknown key(s) ['trainng'] at the top level" in out, out[-3000:]
    assert "allowed keys there: run_name, outdir, cohorts" in out and "training" in out
    assert "workflow/schemas/config.schema.yaml" in out
    assert len(out.splitlines()) < 15, out[-3000:]  # not the ~1,800-line schema dump


def test_a_bad_nested_value_names_its_key_and_the_schema() -> None:
    from mmsurv.config import config_error_message

    config = {**PARTIAL, "training": {"models": ["snn"], "epochs": "many"}}
    msg = config_error_message(_schema_error(config, "config.schema.yaml"), "schema.yaml")
    expected = "config key `training.epochs`: 'many' is not of type 'integer' (schema: schema.yaml)"
    assert msg == expected
    config = {**PARTIAL, "bags": {"omics_impute": "median"}}
    msg = config_error_message(_schema_error(config, "config.schema.yaml"), "schema.yaml")
    assert msg is not None and msg.startswith("config key `bags.omics_impute`: 'median' is not")


def test_a_bad_mpp_names_the_sheet_file_and_the_slide() -> None:
    import pandas as pd

    from mmsurv.config import sheet_error_message

    sheet = pd.DataFrame(
        {
            "cohort": ["A", "A", "B"],
            "case_id": ["c1", "c2", "c3"],
            "slide_id": ["s1", "s2", "s3"],
            "path": ["s1.svs", "s2.svs", "s3.svs"],
            "mpp": [0.25, float("nan"), -0.5],
        }
    )
    err = _schema_error(sheet, "samples.schema.yaml")
    assert "row 2 of data frame" in str(err)  # all that Snakemake says
    msg = sheet_error_message(err, sheet, "my/slides.tsv", "samples.schema.yaml")
    assert msg is not None
    assert msg.startswith("slide sheet my/slides.tsv: slide s3 (cohort B), column `mpp`: -0.5 ")


def test_tcga_cohorts_get_their_pancancer_study_unless_the_user_names_one() -> None:
    from mmsurv.config import derive_defaults

    user = {"acquisition": {"omics": {"studies": {"TCGA-BLCA": "my_blca_study"}}}}
    config = {
        "data_source": "tcga",
        "cohorts": ["TCGA-BLCA", "TCGA-READ", "MY-COHORT"],
        "acquisition": {"omics": {"studies": {"TCGA-BLCA": "my_blca_study"}}},
    }
    derived = derive_defaults(config, user)
    assert config["acquisition"]["omics"]["studies"] == {
        "TCGA-BLCA": "my_blca_study",  # the user's own
        "TCGA-READ": "coadread_tcga_pan_can_atlas_2018",  # COAD and READ share one study
    }  # MY-COHORT is no TCGA project: the parse-time check names it
    assert list(derived) == ["acquisition.omics.studies.TCGA-READ"]
    local = {"data_source": "local", "cohorts": ["TCGA-BLCA"]}
    assert derive_defaults(local, {}) == {} and "acquisition" not in local
