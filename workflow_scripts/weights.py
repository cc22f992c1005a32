"""Where a backbone's starting weights are: ImageNet's files (their names, download addresses
and local folders) or a backbone weights file of the user's own.

Compute nodes never download: training reads ImageNet's files from `model.weights_dir`
(default resources/weights), where the `fetch_weights` stage puts them on a machine with
internet. The names are Keras' own, so a file already in ~/.keras/models is found too.
`model.weights` may instead name a Keras `.weights.h5` file of the same backbone (for a
domain-pretrained one, such as the demo's `pretrain_backbone` rule writes), with `{arch}` in
the path standing for the architecture.
"""

import os
from pathlib import Path

from workflow_scripts.stage import InputError

DEFAULT_DIR = "resources/weights"
BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications"
NAMED_WEIGHTS = ("none", "imagenet")
ALPHA_NAMES = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}


def weight_file(arch, alpha=1.0):
    """Keras' file name of the top-less ImageNet weights of `arch`, or None if none exist."""
    if arch == "mobilenet":
        return f"mobilenet_{ALPHA_NAMES[float(alpha)]}_224_tf_no_top.h5"
    if arch == "densenet121":
        return "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"
    return None  # AlexNet: Keras publishes no ImageNet weights


def weight_url(arch, alpha=1.0):
    folder = {"mobilenet": "mobilenet", "densenet121": "densenet"}[arch]
    return f"{BASE_URL}/{folder}/{weight_file(arch, alpha)}"


def keras_cache_dir():
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def find_weights(arch, alpha, weights_dir):
    """The local weight file of `arch`, or InputError saying how to get it."""
    name = weight_file(arch, alpha)
    candidates = [Path(weights_dir or DEFAULT_DIR) / name, keras_cache_dir() / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(
        f"model.weights is imagenet but {name} is in neither {candidates[0].parent} nor "
        f"{candidates[1].parent}, and compute nodes never download. On a machine with "
        "internet run `snakemake --cores 1 fetch_weights`, or set model.weights_dir to "
        "where the file is."
    )


def backbone_weights_file(weights, arch):
    """The path of the user's backbone weights file that `model.weights` names for `arch`, or
    None for `none` and `imagenet`."""
    if weights in NAMED_WEIGHTS:
        return None
    return weights.format(arch=arch)
