rule demo_dataset:
    output:
        metadata="results/demo/Data_Entry_2017_v2020.csv",
        images=directory("results/demo/images_001"),
        train_val_list="results/demo/train_val_list.txt",
        test_list="results/demo/test_list.txt",
    log:
        "logs/demo_dataset.log",
    params:
        demo=config["demo"],
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/demo_dataset.py"


rule parse_metadata:
    input:
        metadata=nih_or_demo("metadata"),
    output:
        labels="results/labels/labels.parquet",
        counts="results/labels/label_counts.csv",
        summary="results/labels/summary.json",
    log:
        "logs/parse_metadata.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/parse_metadata.py"


rule build_image_cache:
    input:
        splits=expand("results/splits/{target}.parquet", target=TARGETS)
        + ([PRETRAINING_SPLIT] if USES_PRETRAINING else []),
        images=nih_or_demo("images"),
    output:
        **{name: f"{CACHE}/{file}" for name, file in CACHE_FILE_NAMES.items()},
    log:
        "logs/build_image_cache/{size}.log",
    params:
        skip_unreadable=config["data"]["skip_unreadable"],
    threads: config["cache"]["threads"]
    resources:
        mem_mb=config["cache"]["mem_mb"],
        runtime=lambda wildcards, attempt: 120 * attempt,
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/build_image_cache.py"
