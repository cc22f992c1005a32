"""Stage `fetch_weights`: ImageNet weights, downloaded once, on a machine with internet.

The `fetch_weights` rule is a local rule, so on a cluster it runs on the login node before any
job needs the files (see `weights` for where they go and how jobs find them).
"""

import shutil
import urllib.request
from pathlib import Path

from workflow_scripts.stage import atomic_path, log, run
from workflow_scripts.weights import keras_cache_dir


def download(url, path):
    """Download `url` to `path` through a temporary name, reusing Keras' cached copy."""
    cached = keras_cache_dir() / Path(path).name
    with atomic_path(path) as temporary:
        if cached.is_file():
            shutil.copyfile(cached, temporary)
        else:
            with urllib.request.urlopen(url, timeout=120) as response, \
                    open(temporary, "wb") as out:
                shutil.copyfileobj(response, out)


def main(snakemake):
    for path, url in zip(snakemake.output, snakemake.params.urls, strict=True):
        log.info("fetching %s", url)
        download(url, path)


if __name__ == "__main__":
    run(snakemake, main)  # noqa: F821 - `snakemake` is injected by the rule's script directive
