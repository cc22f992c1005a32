rule train:
    input:
        split=rules.make_split.output.split,
        # ancient: see rule lr_finder; cached pixels of an image never change.
        cache_images=ancient(CACHE_IMAGES),
        cache_index=ancient(CACHE_INDEX),
        lr_finder=lr_finder_result,
        weights=backbone_weights,
    output:
        **output_files(config["train"]["save_model"]),
    log:
        f"logs/train/{RUN_KEY}.log",
    benchmark:
        f"benchmarks/train/{RUN_KEY}.tsv"
    params:
        # Not the job's resources: Snakemake reruns a finished job whose params changed.
        settings=lambda wildcards: computation_settings(target_settings(wildcards.target, "train")),
        model=lambda wildcards: target_settings(wildcards.target, "model"),
        metrics=config["metrics"],
        image_size=IMAGE_SIZE,
        # Resumable state lives outside the outputs, which Snakemake deletes before a retry.
        checkpoint=checkpoint_folder(RUN),
    threads: lambda wildcards: target_settings(wildcards.target, "train")["threads"]
    resources:
        gpu=lambda wildcards: target_settings(wildcards.target, "train")["gpus"],
        mem_mb=lambda wildcards, attempt: target_settings(wildcards.target, "train")["mem_mb"]
        * attempt,
        runtime=lambda wildcards, attempt: target_settings(wildcards.target, "train")["runtime"]
        * attempt,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/train.py"


# A run's checkpoint stays after training (see workflow_scripts/checkpoint.py) until this job,
# which Snakemake starts only once the target's run outputs, its inputs, are committed.
rule retire_checkpoints:
    input:
        runs=lambda wildcards: report_inputs(wildcards)["runs"],
    output:
        retired=RETIRED_CHECKPOINTS,
    log:
        "logs/retire_checkpoints/{target}.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/retire_checkpoints.py"


if WEIGHT_FILES:

    # Runs where it is started (the login node on a cluster): compute nodes never download.
    rule fetch_weights:
        output:
            weights=list(WEIGHT_FILES.values()),
        log:
            "logs/fetch_weights.log",
        params:
            urls=[weight_url(arch, ALPHA) for arch in WEIGHT_FILES],
        localrule: True
        conda:
            "../envs/data.yaml"
        script:
            "../workflow_scripts/fetch_weights.py"
