rule make_split:
    input:
        labels=rules.parse_metadata.output.labels,
        test_list=config["data"]["test_list"] or [],
    output:
        split="results/splits/{target}.parquet",
    log:
        "logs/make_split/{target}.log",
    params:
        settings=config["splits"],
        test_list=config["data"]["test_list"],
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/make_split.py"


rule split_summary:
    input:
        splits=expand(rules.make_split.output.split, target=TARGETS),
    output:
        summary="results/splits/summary.csv",
    log:
        "logs/make_split/summary.log",
    params:
        targets=TARGETS,
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/make_split.py"
