# Wildcard values come from the config and the slide sheet only (see common.smk). The constraints
# are character classes from the schemas (samples.schema.yaml, config.schema.yaml), never
# lists of values: Snakemake puts each constraint into every pattern of the wildcard and matches
# and substitutes those patterns for every job, so a list of every slide id made each job's cost
# grow with the sheet. Ids outside the sheet still match here; their input functions reject them.
SLIDE_ID = r"[A-Za-z0-9._-]+"
COHORT_ID = r"[A-Za-z0-9_-]+"
MODEL_ID = r"[a-z0-9_]+"


wildcard_constraints:
    cohort=COHORT_ID,
    slide=SLIDE_ID,
    model=MODEL_ID,
    fold=r"\d+",
    seed=r"\d+",
    batch=r"\d+",
