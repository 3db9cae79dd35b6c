# Wildcard values come from the config and the slide sheet only (see common.smk).


wildcard_constraints:
    cohort=_alternatives(COHORTS),
    slide=_alternatives(samples["slide_id"]),
    model=_alternatives(MODELS),
    fold=r"\d+",
