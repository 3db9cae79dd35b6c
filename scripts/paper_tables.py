"""Snakemake entry point: the paper's Table 1 and Table 2 (CSV, Markdown, LaTeX)."""

from mmsurv.io import setup_logging

setup_logging(snakemake.log[0])

from mmsurv.evaluate import write_paper_tables

out = snakemake.output
write_paper_tables(
    snakemake.input.folds,
    outputs={
        key: {ext: out[f"{key}_{ext}"] for ext in ("csv", "md", "tex")}
        for key in ("table1", "table2")
    },
    configured_models=snakemake.params.models,
    cohort_order=snakemake.params.cohorts,
    # input.published: the paper's Table 1 and Table 2 numbers, only when evaluation.published
    published=dict(zip(("table1", "table2"), snakemake.input.published, strict=True))
    if snakemake.input.published
    else None,
    published_map=snakemake.params.published_cohorts,
    out_prov=out.prov,
    ddof=snakemake.params.std_ddof,
    # input.paired: each model vs the KM model (§ marks), only when rule paired_table is planned
    paired=snakemake.input.paired[0] if snakemake.input.paired else None,
)
