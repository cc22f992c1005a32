"""The demo dataset on disk: checked parameters, PNGs rendered in parallel, lists and the CSV.

Nothing half-written is left behind: the images go into a temporary folder that replaces
`images_001` when complete, each text file is written under a temporary name and renamed, and
the CSV comes last, so an interrupted run leaves no CSV behind.
"""

import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from workflow_scripts.demo.metadata import data_entry_csv, official_test_patients, sample_metadata
from workflow_scripts.demo.rendering import ImageSpec, render_radiograph
from workflow_scripts.labels import NO_FINDING
from workflow_scripts.stage import InputError

METADATA_NAME = "Data_Entry_2017_v2020.csv"
IMAGES_FOLDER = Path("images_001") / "images"
TRAIN_VAL_LIST_NAME = "train_val_list.txt"
TEST_LIST_NAME = "test_list.txt"
# Everything `make_demo_dataset` writes into its folder.
OUTPUT_NAMES = (METADATA_NAME, IMAGES_FOLDER.parts[0], TRAIN_VAL_LIST_NAME, TEST_LIST_NAME)

MIN_IMAGES = 200
PNG_SIZE_RANGE = (32, 1024)
PNG_COMPRESSION = 1  # higher levels are slower and barely smaller on noisy films
CHUNK = 50  # images per worker task


def make_demo_dataset(out_dir, *, n_images=3000, png_size=256, seed=0, rgba_fraction=0.005,
                      workers=1):
    """Write a ChestX-ray14-shaped dataset of `n_images` images into `out_dir`.

    Writes `Data_Entry_2017_v2020.csv`, `images_001/images/<patient>_<follow-up>.png`
    (`png_size` square, 8-bit gray; round(`rgba_fraction` x `n_images`) of them RGBA),
    `train_val_list.txt` and `test_list.txt` (disjoint by patient, ~23% of images in test).
    Earlier outputs are removed first; the images are written into a temporary folder that
    replaces `images_001` when complete, and the CSV is written last, so an interrupted run
    leaves no CSV behind. Returns counts: images, patients, label sets, test/train_val
    images, RGBA images, images whose drawn findings differ from their labels, and seconds.
    """
    check_parameters(n_images=n_images, png_size=png_size, seed=seed,
                     rgba_fraction=rgba_fraction, workers=workers)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (METADATA_NAME, TRAIN_VAL_LIST_NAME, TEST_LIST_NAME):
        (out_dir / name).unlink(missing_ok=True)

    metadata = sample_metadata(n_images, seed, rgba_fraction)
    test_patients = official_test_patients(metadata, seed)
    write_images(metadata, out_dir, seed=seed, size=png_size, workers=workers)
    in_test = metadata["patient_id"].isin(test_patients)
    names = metadata["image_index"]
    write_text_atomically(out_dir / TRAIN_VAL_LIST_NAME, image_list(names[~in_test]))
    write_text_atomically(out_dir / TEST_LIST_NAME, image_list(names[in_test]))
    write_text_atomically(out_dir / METADATA_NAME, data_entry_csv(metadata))
    return {
        "n_images": len(metadata),
        "n_patients": int(metadata["patient_id"].nunique()),
        "n_label_sets": int(metadata["finding_labels"].nunique()),
        "n_no_finding": int((metadata["finding_labels"] == NO_FINDING).sum()),
        "n_test_images": int(in_test.sum()),
        "n_train_val_images": int((~in_test).sum()),
        "n_test_patients": len(test_patients),
        "n_rgba_images": int(metadata["rgba"].sum()),
        "n_findings_differ_from_labels": sum(
            drawn != labelled for drawn, labelled in zip(
                metadata["drawn_findings"], metadata["label_findings"], strict=True)),
        "seconds": round(time.perf_counter() - start, 2),
    }


def check_parameters(*, n_images, png_size, seed, rgba_fraction, workers):
    """Raise InputError naming the first parameter out of its range, and the fix."""
    def is_integer(value):
        return isinstance(value, int | np.integer) and not isinstance(value, bool)

    if not is_integer(n_images) or n_images < MIN_IMAGES:
        raise InputError(f"demo.n_images is {n_images!r}: use an integer of at least "
                         f"{MIN_IMAGES}, so that every frequent finding has positives.")
    low, high = PNG_SIZE_RANGE
    if not is_integer(png_size) or not low <= png_size <= high:
        raise InputError(f"demo.png_size is {png_size!r}: use an integer from {low} to {high} "
                         "(pixels per side; the real images are 1024).")
    if not is_integer(seed) or seed < 0:
        raise InputError(f"demo.seed is {seed!r}: use a non-negative integer.")
    if (isinstance(rgba_fraction, bool) or not isinstance(rgba_fraction, int | float)
            or not 0 <= rgba_fraction < 1):
        raise InputError(f"demo.rgba_fraction is {rgba_fraction!r}: use a number in [0, 1), "
                         "e.g. 0.005 (the real data holds a few hundred RGBA images).")
    if not is_integer(workers) or workers < 1:
        raise InputError(f"workers is {workers!r}: use a positive integer (processes).")


def image_list(names):
    """A list file's text: one image name per line."""
    return "".join(f"{name}\n" for name in names)


def image_specs(metadata):
    return [ImageSpec(number, name, int(patient), view, sex, int(age), tuple(findings),
                      bool(rgba))
            for number, (name, patient, view, sex, age, findings, rgba) in enumerate(zip(
                metadata["image_index"], metadata["patient_id"], metadata["view"],
                metadata["sex"], metadata["age"], metadata["drawn_findings"], metadata["rgba"],
                strict=True))]


def write_images(metadata, out_dir, *, seed, size, workers):
    """Render every image into a fresh folder, then move it to `out_dir/images_001`."""
    final = out_dir / IMAGES_FOLDER.parts[0]
    partial = out_dir / f".{IMAGES_FOLDER.parts[0]}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    folder = partial / IMAGES_FOLDER.parts[1]
    folder.mkdir(parents=True)
    specs = image_specs(metadata)
    tasks = [(specs[start:start + CHUNK], seed, size, folder)
             for start in range(0, len(specs), CHUNK)]
    try:
        if workers > 1:
            # One process per core already: OpenCV's own threads would only contend.
            with ProcessPoolExecutor(workers, mp_context=get_context("fork"),
                                     initializer=cv2.setNumThreads, initargs=(1,)) as pool:
                list(pool.map(write_image_chunk, tasks))
        else:
            for task in tasks:
                write_image_chunk(task)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)


def write_image_chunk(task):
    """Worker: render and write the PNGs of one chunk of image specs."""
    specs, seed, size, folder = task
    for spec in specs:
        (folder / spec.file_name).write_bytes(
            encode_png(render_radiograph(spec, seed=seed, size=size), rgba=spec.rgba))


def encode_png(image, *, rgba=False):
    """PNG bytes of a uint8 gray image; as 4-channel RGBA (opaque) when `rgba`."""
    if rgba:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
    ok, buffer = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return buffer.tobytes()


def write_text_atomically(path, text):
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
