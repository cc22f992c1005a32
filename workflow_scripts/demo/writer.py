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

from workflow_scripts.demo.metadata import data_entry_csv, official_test_patients, sample_metadata
from workflow_scripts.demo.rendering import ImageSpec, render_radiograph
from workflow_scripts.labels import NO_FINDING
from workflow_scripts.stage import atomic_path

METADATA_NAME = "Data_Entry_2017_v2020.csv"
IMAGES_FOLDER = Path("images_001") / "images"
TRAIN_VAL_LIST_NAME = "train_val_list.txt"
TEST_LIST_NAME = "test_list.txt"
# Everything `make_demo_dataset` writes into its folder.

PNG_COMPRESSION = 1  # higher levels are slower and barely smaller on noisy films
CHUNK = 50  # images per worker task


def make_demo_dataset(out_dir, *, n_images, png_size, seed, rgba_fraction, workers=1):
    """Write a ChestX-ray14-shaped dataset of `n_images` images into `out_dir`.

    Writes `Data_Entry_2017_v2020.csv`, `images_001/images/<patient>_<follow-up>.png`
    (`png_size` square, 8-bit gray; round(`rgba_fraction` x `n_images`) of them RGBA),
    `train_val_list.txt` and `test_list.txt` (disjoint by patient, ~23% of images in test),
    atomically as the module says, after removing earlier outputs. Returns counts: images,
    patients, label sets, test/train_val images, RGBA images, images whose drawn findings
    differ from their labels, and seconds.
    """
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
        "n_findings_differ_from_labels": int(
            (metadata["drawn_findings"] != metadata["label_findings"]).sum()),
        "seconds": round(time.perf_counter() - start, 2),
    }


def image_list(names):
    """A list file's text: one image name per line."""
    return "".join(f"{name}\n" for name in names)


def image_specs(metadata):
    return [ImageSpec(number, row.image_index, int(row.patient_id), row.view, row.sex,
                      int(row.age), tuple(row.drawn_findings), bool(row.rgba))
            for number, row in enumerate(metadata.itertuples())]


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
    with atomic_path(path) as temporary:
        temporary.write_text(text)
