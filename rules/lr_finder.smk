rule lr_finder:
    input:
        split=rules.make_split.output.split,
        # ancient: the cache is rebuilt whenever any target's split changes, but an image's
        # cached pixels never do, so a rebuild must not invalidate this target's results.
        cache_images=ancient(CACHE_IMAGES),
        cache_index=ancient(CACHE_INDEX),
        weights=imagenet_weights,
    output:
        curve="results/lr_finder/{target}/{arch}.csv",
        bounds="results/lr_finder/{target}/{arch}.json",
        plot="results/lr_finder/{target}/{arch}.png",
    log:
        "logs/lr_finder/{target}/{arch}.log",
    params:
        settings=lambda wildcards: computation_settings(target_settings(wildcards.target, "train")),
        finder=lambda wildcards: target_settings(wildcards.target, "lr_finder"),
        model=lambda wildcards: target_settings(wildcards.target, "model"),
        image_size=IMAGE_SIZE,
    threads: lambda wildcards: target_settings(wildcards.target, "train")["threads"]
    resources:
        gpu=lambda wildcards: target_settings(wildcards.target, "train")["gpus"],
        mem_mb=lambda wildcards, attempt: target_settings(wildcards.target, "train")["mem_mb"]
        * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/lr_finder.py"
