"""Stage `fetch_weights`: ImageNet weights, downloaded once, on a machine with internet.

Compute nodes never download: training reads these files from `model.weights_dir`
(default resources/weights), and the `fetch_weights` rule is a local rule, so on a cluster
it runs on the login node before any job needs the files. The names are Keras' own, so a
file already in ~/.keras/models is found too.
"""

import os
import shutil
import urllib.request
from pathlib import Path

from workflow_scripts.stage import InputError, log, run

DEFAULT_DIR = "resources/weights"
BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications"
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


def download(url, path):
    """Download `url` to `path` through a temporary name, reusing Keras' cached copy."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cached = keras_cache_dir() / path.name
    temporary = path.with_name(f".{path.name}.part")
    if cached.is_file():
        shutil.copyfile(cached, temporary)
    else:
        with urllib.request.urlopen(url, timeout=120) as response, open(temporary, "wb") as out:
            shutil.copyfileobj(response, out)
    os.replace(temporary, path)


def main(snakemake):
    for path, url in zip(snakemake.output, snakemake.params.urls, strict=True):
        log.info("fetching %s", url)
        download(url, path)


if __name__ == "__main__":
    run(snakemake, main)  # noqa: F821 - `snakemake` is injected by the rule's script directive
