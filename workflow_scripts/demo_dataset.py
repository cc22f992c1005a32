"""Stage `demo_dataset`: the synthetic ChestX-ray14-shaped dataset for `data.source: demo`.

The generator is the package `workflow_scripts.demo`; this entry writes the dataset into the
outputs' folder (the config schema checks the settings) and logs what it holds.
"""

from pathlib import Path

from workflow_scripts.demo.writer import make_demo_dataset
from workflow_scripts.stage import log, run


def main(snakemake):
    """Rule `demo_dataset`: params.demo holds the keyword arguments of `make_demo_dataset`
    (n_images, png_size, seed, rgba_fraction); the CSV's folder is the dataset's folder."""
    out_dir = Path(snakemake.output.metadata).parent
    summary = make_demo_dataset(out_dir, workers=snakemake.threads, **snakemake.params.demo)
    log.info("demo dataset in %s: %d images of %d patients, %d label sets, %d 'No Finding'",
             out_dir, summary["n_images"], summary["n_patients"], summary["n_label_sets"],
             summary["n_no_finding"])
    log.info("official-style split: %d test images of %d patients, %d train_val images",
             summary["n_test_images"], summary["n_test_patients"],
             summary["n_train_val_images"])
    log.info("%d RGBA images; %d images whose drawn findings differ from their labels",
             summary["n_rgba_images"], summary["n_findings_differ_from_labels"])
    log.info("written in %.1f s on %d worker(s)", summary["seconds"], snakemake.threads)


if __name__ == "__main__":
    run(snakemake, main)  # noqa: F821 - `snakemake` is injected by the rule's script directive
