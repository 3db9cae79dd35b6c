"""Report stage: the run summary (provenance, cohorts, tables) for the report rule."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mmsurv.config import LEAKY_SELECTION
from mmsurv.io import write_text_atomic
from mmsurv.model_catalog import model_inputs

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def write_run_summary(
    out_md: PathLike,
    *,
    config: Mapping[str, Any],
    cindex_csv: PathLike,
    km_stats: Sequence[PathLike],
    splits: Sequence[PathLike],
    metrics_csv: PathLike | None = None,
    effective_config: Sequence[Sequence[str]] | None = None,
    dropped: Sequence[PathLike] = (),
    omics_missing: Sequence[PathLike] = (),
) -> None:
    """A one-page Markdown summary of the run's provenance, cohorts, tables and KM statistics.

    With ``metrics_csv`` (the metrics table's CSV) the pooled c-index and its bootstrap CI,
    the td-AUCs and the IBS are listed too. ``effective_config`` ([key, value, source] rows of
    :func:`mmsurv.config.effective_rows`) ends the page, so a run states every setting it used.
    ``dropped`` (each cohort's dropped_cases.tsv) and ``omics_missing`` (omics_missing.json)
    list the cases left out of the folds and the missing omics cells per case and column.
    """
    if any("path" in model_inputs(m) for m in config["training"]["models"]):
        weights = config["features"].get("weights") or "random-init"
        encoder = f"{config['features']['encoder']}, weights: **{weights}**"
    else:
        encoder = "not used (no configured model reads pathology)"
    n_folds = config["splits"]["n_folds"]
    seeds = list(config["training"]["seeds"])
    folds = {
        "user": f"{n_folds} from the user's split CSVs",
        "site": f"{n_folds} site-preserved, stratified by event (seed {config['splits']['seed']})",
    }.get(
        config["splits"].get("source", "make"),
        f"{n_folds} stratified (seed {config['splits']['seed']})",
    )
    lines = [
        f"# mmsurv run `{config.get('run_name', 'mmsurv')}`",
        "",
        f"- data source: {config['data_source']}",
        f"- encoder: {encoder}",
        f"- model selection: {config['training']['model_selection']}"
        + (
            " (**leaky**: epochs chosen on the held-out fold; the c-index is inflated)"
            if config["training"]["model_selection"] == LEAKY_SELECTION
            else ""
        ),
        f"- folds: {folds}, epochs: {config['training']['epochs']}, "
        f"training seeds {', '.join(map(str, seeds))} ({n_folds} folds x {len(seeds)} "
        f"seed{'' if len(seeds) == 1 else 's'} = {n_folds * len(seeds)} runs per model and cohort)",
        "",
        "## Cohorts",
        "",
        "| cohort | cases in folds | splits file | SHA-256 (cite it with the results) |",
        "|---|---|---|---|",
    ]
    for path in splits:
        table = pd.read_csv(path, sep="\t", dtype={"case_id": str})
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        lines.append(f"| {Path(path).parent.name} | {len(table)} | `{path}` | `{digest}` |")
    lines += dropped_lines(dropped) + omics_missing_lines(omics_missing)
    lines += ["", "## c-index (mean ± std)", ""]
    table = pd.read_csv(cindex_csv)
    lines.append(table.to_markdown(index=False))
    lines += ["", "## Kaplan-Meier (maxstat cutpoint on the held-out risks: optimistic)", ""]
    rows = [json.loads(Path(p).read_text()) for p in km_stats]
    keys = ["cohort", "model", "cutpoint", "statistic", "p_maxstat_lau92", "p_maxstat_perm"]
    keys += ["logrank_p", "n_low", "n_high"]
    lines.append(pd.DataFrame(rows)[keys].to_markdown(index=False))
    honest = [
        {"cohort": r["cohort"], "model": r["model"], **r["honest"]} for r in rows if "honest" in r
    ]
    if honest:  # cutpoints learned on each fold's training cases: a plain log-rank p
        lines += ["", "Honest split (each fold's cutpoint from its training cases' risks):", ""]
        keys = ["cohort", "model", "logrank_p", "n_low", "n_high", "events_low", "events_high"]
        lines.append(pd.DataFrame(honest)[keys].to_markdown(index=False))
    if metrics_csv is not None:
        metrics = pd.read_csv(metrics_csv)
        keys = ["cohort", "model", "metric", "horizon", "value", "std", "ci_low", "ci_high"]
        lines += ["", "## More metrics (pooled c-index CI, td-AUC, IBS)", ""]
        lines.append(metrics[keys].to_markdown(index=False, floatfmt=".3f"))
    if effective_config:
        lines += ["", "## Effective configuration", ""]
        lines += [
            "Source: `user` = your config file or --config, `protocol <name>` = "
            "`training.protocol`'s preset, `demo` = config/config.yaml (read only when no "
            "--configfile is given), `default` = the schema's default.",
            "",
            "| key | value | source |",
            "|---|---|---|",
        ]
        # GFM: a pipe inside a table cell, even in a code span, must be escaped.
        escaped = [(k, v.replace("|", "\\|"), src) for k, v, src in effective_config]
        lines += [f"| `{k}` | `{v}` | {src} |" for k, v, src in escaped]
    write_text_atomic(out_md, "\n".join(lines) + "\n")


def dropped_lines(paths: Sequence[PathLike]) -> list[str]:
    """Markdown section: per cohort and reason, how many cases the folds left out, and which."""
    rows = []
    for path in paths:
        table = pd.read_csv(path, sep="\t", dtype={"case_id": str, "reason": str})
        for reason, group in table.groupby("reason", sort=True):
            ids = group["case_id"].tolist()
            shown = ", ".join(ids[:20]) + (f", … (+{len(ids) - 20})" if len(ids) > 20 else "")
            rows.append(f"| {Path(path).parent.name} | {reason} | {len(ids)} | {shown} |")
    if not rows:
        return ["", "## Cases left out of the folds", "", "None."]
    head = ["| cohort | reason | cases | case ids |", "|---|---|---|---|"]
    return ["", "## Cases left out of the folds", ""] + head + rows


def omics_missing_lines(paths: Sequence[PathLike]) -> list[str]:
    """Markdown section: missing omics cells per cohort, the policy, and the most-hit cases."""
    rows = []
    for path in paths:
        doc = json.loads(Path(path).read_text())
        if not doc.get("n_cells"):
            continue
        by_case = sorted(doc["by_case"].items(), key=lambda kv: (-kv[1], kv[0]))
        by_col = sorted(doc["by_column"].items(), key=lambda kv: (-kv[1], kv[0]))
        top_cases = ", ".join(f"{k} ({v})" for k, v in by_case[:10])
        top_cols = ", ".join(f"{k} ({v})" for k, v in by_col[:10])
        action = {"mean": "imputed (training-fold mean)", "drop_case": "cases dropped"}.get(
            doc["policy"], doc["policy"]
        )
        rows.append(
            f"| {Path(path).parent.name} | {doc['n_cells']} | {doc['n_cases']} | "
            f"{doc['n_columns']} | {action} | {top_cases} | {top_cols} |"
        )
    title = ["", "## Missing omics values (`bags.omics_impute`)", ""]
    if not rows:
        return title + ["None."]
    head = [
        "| cohort | cells | cases | columns | action | most-hit cases (cells) "
        "| most-hit columns (cells) |",
        "|---|---|---|---|---|---|---|",
    ]
    return (
        title
        + head
        + rows
        + ["", "Every count per case and column: `{outdir}/{cohort}/omics_missing.json`."]
    )
