"""Stage `demo_dataset`: the synthetic ChestX-ray14-shaped dataset for `data.source: demo`.

The generator is the package `workflow_scripts.demo`; this entry checks the rule's settings and
outputs, writes the dataset into the outputs' folder and logs what it holds.
"""

from pathlib import Path

from workflow_scripts.demo.writer import METADATA_NAME, OUTPUT_NAMES, make_demo_dataset
from workflow_scripts.stage import InputError, log, run


def main(snakemake):
    """Rule `demo_dataset`: params.demo holds the keyword arguments of `make_demo_dataset`
    (n_images, png_size, seed, rgba_fraction); the CSV's folder is the dataset's folder."""
    settings = dict(snakemake.params.demo)
    known = {"n_images", "png_size", "seed", "rgba_fraction"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise InputError(f"demo: unknown key(s) {', '.join(unknown)}; the known keys are "
                         f"{', '.join(sorted(known))}.")
    metadata = Path(snakemake.output.metadata)
    if metadata.name != METADATA_NAME:
        raise InputError(f"rule demo_dataset: output.metadata is {metadata}; name it "
                         f"{METADATA_NAME}, as the real download is named.")
    out_dir = metadata.parent
    written = {out_dir / name for name in OUTPUT_NAMES}
    unexpected = [path for path in map(Path, snakemake.output) if path not in written]
    if unexpected:
        raise InputError(f"rule demo_dataset: output(s) {', '.join(map(str, unexpected))} are "
                         f"not written by this stage; it writes {', '.join(map(str, written))}.")
    summary = make_demo_dataset(out_dir, workers=max(1, int(snakemake.threads)), **settings)
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
