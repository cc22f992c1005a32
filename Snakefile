# Cyclical learning rates on NIH ChestX-ray14: labels -> splits -> image cache -> LR finder
# -> training (target x architecture x policy x seed) -> comparison report.
from snakemake.utils import min_version, validate

from workflow_scripts.configuration import SCHEMA, check_config, computation_settings

min_version("9.14.1")


# The demo is the default; `--configfile config/nih.yaml` (or any other) replaces it rather
# than being merged into it, so no demo setting leaks into a real run.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# One line per problem (Snakemake's validate would print the whole schema), then Snakemake's
# validate for the schema's defaults.
check_config(config, f"{workflow.basedir}/{SCHEMA}")
validate(config, SCHEMA)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/splits.smk"
include: "rules/pretrain.smk"
include: "rules/lr_finder.smk"
include: "rules/train.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
