# Cyclical learning rates on NIH ChestX-ray14: labels -> splits -> image cache -> LR finder
# -> training (target x architecture x policy x seed) -> comparison report.
from snakemake.utils import min_version, validate

min_version("9.14.1")


# The demo is the default; `--configfile config/nih.yaml` (or any other) replaces it rather
# than being merged into it, so no demo setting leaks into a real run.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/splits.smk"
include: "rules/lr_finder.smk"
include: "rules/train.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
