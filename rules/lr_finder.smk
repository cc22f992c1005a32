rule lr_finder:
    input:
        split=rules.make_split.output.split,
        # ancient: the cache is rebuilt whenever any target's split changes, but an image's
        # cached pixels never do, so a rebuild must not invalidate this target's results.
        cache_images=ancient(CACHE_IMAGES),
        cache_index=ancient(CACHE_INDEX),
        weights=backbone_weights,
    output:
        curve=f"{LR_FINDER}.csv",
        bounds=f"{LR_FINDER}.json",
        plot=f"{LR_FINDER}.png",
    log:
        log="logs/lr_finder/{target}/{arch}.log",
        # Where a range test that gives no usable bounds leaves its curve and figure:
        # Snakemake deletes a failed job's outputs, not its logs.
        curve="logs/lr_finder/{target}/{arch}.curve.csv",
        figure="logs/lr_finder/{target}/{arch}.curve.png",
    benchmark:
        "benchmarks/lr_finder/{target}/{arch}.tsv"
    params:
        settings=lambda wildcards: computation_settings(target_settings(wildcards.target, "train")),
        finder=lambda wildcards: target_settings(wildcards.target, "lr_finder"),
        model=lambda wildcards: target_settings(wildcards.target, "model"),
        image_size=IMAGE_SIZE,
        # Without usable bounds the job stops only if a run needs them (lr_finder.run: always
        # also tests targets whose bounds the config sets, to show the verdict).
        bounds_needed=lambda wildcards: lr_finder_bounds_needed(wildcards.target),
    threads: lambda wildcards: target_settings(wildcards.target, "train")["threads"]
    # Before the runs that need no bounds, so that the runs waiting for it start early.
    priority: 1
    resources:
        gpu=lambda wildcards: target_settings(wildcards.target, "train")["gpus"],
        mem_mb=lambda wildcards, attempt: target_settings(wildcards.target, "train")["mem_mb"]
        * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/lr_finder.py"
