# The demo's stand-in for ImageNet: a backbone pretrained on other diseases and other
# patients (workflow_scripts/pretrain.py); used where model.weights names PRETRAINED_BACKBONE.


rule pretraining_split:
    input:
        labels=rules.parse_metadata.output.labels,
        splits=expand(rules.make_split.output.split, target=TARGETS),
    output:
        split=PRETRAINING_SPLIT,
    log:
        "logs/pretrain/split.log",
    params:
        settings=config["pretrain"],
        targets=TARGETS,
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/pretrain.py"


rule pretrain_backbone:
    input:
        split=PRETRAINING_SPLIT,
        cache_images=CACHE_IMAGES,
        cache_index=CACHE_INDEX,
    output:
        weights=PRETRAINED_BACKBONE,
        summary="results/pretrain/{arch}.json",
    log:
        "logs/pretrain/{arch}.log",
    benchmark:
        "benchmarks/pretrain/{arch}.tsv"
    params:
        settings=config["pretrain"],
        model=config["model"],
        image_size=IMAGE_SIZE,
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["pretrain"]["mem_mb"],
        runtime=60,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/pretrain.py"
