import os
import re

# Snakemake puts this folder on sys.path, here and in every rule script, so the
# workflow_scripts package imports in whatever environment a job runs.
from workflow_scripts.plan import (
    Grid,
    checked_lr_scales,
    needs_lr_finder_bounds,
    scale_label,
    twins,
)
from workflow_scripts.image_cache import CACHE
from workflow_scripts.image_cache import FILES as CACHE_FILE_NAMES
from workflow_scripts.report_contents import TARGET_FIGURES
from workflow_scripts.runs import RUN, RUN_KEY, checkpoint_folder, output_files
from workflow_scripts.weights import DEFAULT_DIR, backbone_weights_file, weight_file, weight_url

TARGETS = config["targets"]
ARCHITECTURES = config["architectures"]
CONFIGURED_POLICIES = config["policies"]
SEEDS = config["seeds"]
LR_SCALES = checked_lr_scales(config["lr_scales"])
IMAGE_SIZE = config["image_size"]
CACHE_FILES = {
    name: f"{CACHE}/{file}".format(size=IMAGE_SIZE) for name, file in CACHE_FILE_NAMES.items()
}
CACHE_IMAGES = CACHE_FILES["images"]
CACHE_INDEX = CACHE_FILES["index"]
CACHE_SUMMARY = CACHE_FILES["summary"]
WEIGHTS_DIR = config["model"]["weights_dir"] or DEFAULT_DIR
ALPHA = config["model"]["mobilenet_alpha"]
# ImageNet weight files of the configured architectures that have them (AlexNet has none).
WEIGHT_FILES = {
    arch: f"{WEIGHTS_DIR}/{weight_file(arch, ALPHA)}"
    for arch in ARCHITECTURES
    if weight_file(arch, ALPHA)
}

# The backbone rule pretrain_backbone writes, and the split it learns from; pretraining runs
# only where model.weights names that file.
PRETRAINED_BACKBONE = "results/pretrain/{arch}.weights.h5"
PRETRAINING_SPLIT = "results/pretrain/pretraining.parquet"
USES_PRETRAINING = any(
    target_model["weights"] == PRETRAINED_BACKBONE
    for target_model in [config["model"]]
    + [override.get("model", {}) for override in config["overrides"].values()]
    if "weights" in target_model
)

if config["data"]["source"] == "nih":
    for key in ("metadata", "images"):
        if not config["data"][key]:
            raise ValueError(
                f"data.{key} is required when data.source is nih: set it to the path of "
                "the NIH download (see config/nih.yaml)."
            )
for target, override in config["overrides"].items():
    if "save_model" in override.get("train", {}):
        raise ValueError(
            f"overrides.{target}.train.save_model: saving models is set for all targets "
            "at once; use train.save_model."
        )


def one_of(names):
    """A wildcard pattern matching exactly the configured names, nothing else."""
    return "|".join(re.escape(str(name)) for name in names)


wildcard_constraints:
    target=one_of(TARGETS),
    arch=one_of(ARCHITECTURES),
    policy=one_of(CONFIGURED_POLICIES),
    seed=one_of(SEEDS),
    # Empty at scale 1: the group keeps the pattern from being empty, which means any text.
    lr_scale=f"(?:{one_of(scale_label(scale) for scale in LR_SCALES)})",
    size=one_of([IMAGE_SIZE]),


def merged(defaults, changes):
    """`defaults` with `changes` applied, nested dicts merged key by key."""
    result = dict(defaults)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            value = merged(result[key], value)
        result[key] = value
    return result


def target_settings(target, section):
    """A config section (train, lr_finder, model) with the target's overrides applied."""
    return merged(config[section], config["overrides"].get(target, {}).get(section, {}))


def nih_or_demo(key):
    """`data.<key>` (metadata, images) of the NIH download, or the demo dataset's output."""
    if config["data"]["source"] == "demo":
        return getattr(rules.demo_dataset.output, key)
    return config["data"][key]


def backbone_weights(wildcards):
    """The local weight file a job starts its backbone from: ImageNet's (model.weights:
    imagenet), the file model.weights names, or none."""
    weights = target_settings(wildcards.target, "model")["weights"]
    if weights == "imagenet" and wildcards.arch in WEIGHT_FILES:
        return WEIGHT_FILES[wildcards.arch]
    return backbone_weights_file(weights, wildcards.arch) or []


LR_FINDER = "results/lr_finder/{target}/{arch}"


def lr_finder_result(wildcards):
    """The LR-finder bounds a cyclical run needs, unless the config sets them."""
    if needs_lr_finder_bounds(wildcards.policy, target_settings(wildcards.target, "train")):
        return f"{LR_FINDER}.json".format(target=wildcards.target, arch=wildcards.arch)
    return []


def lr_finder_bounds_needed(target):
    """Whether a configured run of `target` takes its bounds from the LR range test."""
    settings = target_settings(target, "train")
    return any(needs_lr_finder_bounds(policy, settings) for policy in CONFIGURED_POLICIES)


def lr_finder_results(target):
    """The LR-finder JSON and curve of `target` per architecture that the report shows: where
    a run takes its bounds from them, or everywhere with lr_finder.run: always."""
    if not (lr_finder_bounds_needed(target)
            or target_settings(target, "lr_finder")["run"] == "always"):
        return []
    return [f"{LR_FINDER}{suffix}".format(target=target, arch=arch)
            for arch in ARCHITECTURES for suffix in (".json", ".csv")]


# The runs to train, one per distinct schedule and learning-rate scale: a policy with a twin
# (workflow_scripts.plan) shares its twin's runs.
GRID = Grid(
    tuple(TARGETS),
    tuple(ARCHITECTURES),
    tuple(CONFIGURED_POLICIES),
    tuple(SEEDS),
    twins={
        target: twins(CONFIGURED_POLICIES, target_settings(target, "train")) for target in TARGETS
    },
    lr_scales=LR_SCALES,
)


def run_metrics():
    metrics = output_files(save_model=False)["metrics"]
    return [metrics.format(**key.wildcards()) for key in GRID.all_run_keys()]


def report_inputs(wildcards):
    """What the report of one target reads: label counts, split summary, its LR-finder
    results (`lr_finder_results`), and its run outputs. With report.allow_missing, only runs
    (and LR-finder results) that exist, so that reporting schedules no training; this is
    the one place that decides it. Rule retire_checkpoints reads the same runs."""
    run_files = list(output_files(save_model=False).values())
    runs = [
        [path.format(**key.wildcards()) for path in run_files]
        for key in GRID.run_keys(wildcards.target)
    ]
    lr_finder = lr_finder_results(wildcards.target)
    if config["report"]["allow_missing"]:
        runs = [files for files in runs if all(os.path.exists(f) for f in files)]
        lr_finder = [path for path in lr_finder if os.path.exists(path)]
    return {
        "label_counts": rules.parse_metadata.output.counts,
        "split_summary": rules.split_summary.output.summary,
        "lr_finder": lr_finder,
        "runs": [path for files in runs for path in files],
    }


# The list of checkpoint folders rule retire_checkpoints deleted for one target.
RETIRED_CHECKPOINTS = "results/checkpoints/{target}/retired.txt"


def final_outputs():
    """Everything a full run makes, and the retirement of the finished runs' checkpoints. The LR range tests come in as the report's inputs
    (`lr_finder_results`)."""
    return [
        rules.parse_metadata.output.counts,
        rules.split_summary.output.summary,
        *run_metrics(),
        "results/report/report.html",
        *expand(RETIRED_CHECKPOINTS, target=TARGETS),
    ]
