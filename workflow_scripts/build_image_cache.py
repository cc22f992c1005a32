"""Stage `build_image_cache`: decode every PNG that any split uses, once, into a uint8 array.

Decoding a 1024x1024 PNG costs about ten milliseconds of a core; doing it every epoch is what
made the original study take hours per epoch. Here each image is decoded once (libpng through
OpenCV; RGBA, RGB and 16-bit images become 8-bit gray), resized once to `image_size` with area
interpolation, and written into one `.npy` array that training memory-maps. `index.parquet`
maps image names to rows.

Workers write their rows straight into the memory-mapped output, so no pixel data crosses a
process boundary. Outputs are written under temporary names and renamed at the end, so a
failure leaves nothing that looks finished.
"""

import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from workflow_scripts.stage import InputError, log, run

SHOWN = 5  # names quoted in an error message
CHUNK = 64  # images per task: large enough to amortize scheduling, small enough to balance
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def find_pngs(root):
    """Map file name to path for every PNG under `root` (mirrors nest images_NNN/images/)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"data.images: {root} is not a folder. Point it at the unpacked NIH "
                         "images (the folder holding images_001 ... or images/).")
    paths = {}
    duplicates = []
    for folder, _, files in os.walk(root):
        for name in files:
            if name.lower().endswith(".png"):
                if name in paths:
                    duplicates.append((name, paths[name], os.path.join(folder, name)))
                paths[name] = os.path.join(folder, name)
    if not paths:
        raise InputError(f"data.images: no PNG files under {root}. Unpack images_001.tar.gz ... "
                         "images_012.tar.gz there, or fix the path.")
    if duplicates:
        name, first, second = duplicates[0]
        raise InputError(f"data.images: {len(duplicates)} file name(s) occur twice under {root}, "
                         f"e.g. {name}: {first} and {second}. Keep one copy of each image.")
    return paths


def resize_area(image, size):
    """Area-average to size x size; an integer factor first, since OpenCV's fast path needs one."""
    height, width = image.shape
    factor = min(height, width) // size
    if factor >= 2 and height % factor == 0 and width % factor == 0:
        image = cv2.resize(image, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    if image.shape != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return image


def decode_gray(data):
    """PNG bytes to a 2-D uint8 array; raises ValueError if they are not a readable PNG.

    16-bit samples keep their high byte; colour becomes gray by ITU-R BT.601 luma and alpha
    is dropped (radiographs are opaque): what ChestX-ray14's few hundred RGBA files need.
    """
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG file (the first 8 bytes are not the PNG signature)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("truncated or corrupt PNG (libpng could not decode it)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 3:
        channels = image.shape[2]
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if channels == 4 else cv2.COLOR_BGR2GRAY)
    return image


def decode_image(path, size):
    """Decode one PNG file to a size x size uint8 array; raises ValueError if it cannot."""
    with open(path, "rb") as handle:
        return resize_area(decode_gray(handle.read()), size)


def decode_rows(task):
    """Worker: decode `paths` into rows `start...` of the memory-mapped array; return failures."""
    array_path, start, paths, size = task
    array = np.load(array_path, mmap_mode="r+")
    failures = []
    for offset, path in enumerate(paths):
        try:
            array[start + offset] = decode_image(path, size)
        except (OSError, ValueError) as error:
            failures.append((start + offset, path, str(error)))
    array.flush()
    return failures


def decode_in_parallel(tasks, workers):
    """Run `decode_rows` over `tasks` in `workers` forked processes; return all failures."""
    # One image per process and core, so OpenCV's own threads would only contend. Set in the
    # parent: no OpenCV thread pool may exist when the workers fork, since a child that
    # inherits the pool without its threads hangs as soon as it touches it.
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        if workers == 1:
            return [failure for task in tasks for failure in decode_rows(task)]
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            return [failure for failures in pool.map(decode_rows, tasks) for failure in failures]
    finally:
        cv2.setNumThreads(opencv_threads)


def images_in_splits(split_paths):
    names = pd.concat([pd.read_parquet(path, columns=["image_index"]) for path in split_paths])
    return np.sort(names["image_index"].unique())


def build_cache(names, root, size, array_path, index_path, workers=1, skip_unreadable=False):
    """Decode `names` found under `root` into `array_path` (.npy) and `index_path` (.parquet)."""
    start_time = time.perf_counter()
    files = find_pngs(root)
    missing = [name for name in names if name not in files]
    if missing and not skip_unreadable:
        raise InputError(
            f"data.images: {len(missing)} image(s) of the splits are not under {root}, e.g. "
            f"{', '.join(missing[:SHOWN])}. Unpack all image archives there, or set "
            "data.skip_unreadable: true to exclude them."
        )
    present = [name for name in names if name in files]
    array_path, index_path = Path(array_path), Path(index_path)
    array_path.parent.mkdir(parents=True, exist_ok=True)
    temporary_array = array_path.with_name(f".{array_path.stem}.tmp.npy")
    temporary_index = index_path.with_name(f".{index_path.name}.tmp")
    try:
        array = np.lib.format.open_memmap(temporary_array, mode="w+", dtype=np.uint8,
                                          shape=(len(present), size, size))
        del array
        tasks = [(temporary_array, start, [files[name] for name in present[start:start + CHUNK]],
                  size) for start in range(0, len(present), CHUNK)]
        failures = decode_in_parallel(tasks, workers)
        if failures and not skip_unreadable:
            _, paths, errors = zip(*failures, strict=True)
            raise InputError(
                f"data.images: {len(failures)} image(s) could not be decoded, e.g. "
                + "; ".join(f"{path} ({error})" for path, error in
                            zip(paths[:SHOWN], errors[:SHOWN], strict=True))
                + ". Replace those files (re-extract the archive), or set "
                "data.skip_unreadable: true to exclude them."
            )
        bad_rows = sorted(row for row, _, _ in failures)
        keep = np.setdiff1d(np.arange(len(present)), bad_rows)
        if bad_rows:
            compact_unreadable(temporary_array, keep)
        for _, path, error in failures:
            log.warning("excluded unreadable image %s (%s)", path, error)
        for name in missing:
            log.warning("excluded missing image %s", name)
        kept_names = np.asarray(present, dtype=object)[keep]
        pd.DataFrame({"image_index": pd.array(kept_names, dtype="string"),
                      "row": np.arange(len(kept_names), dtype=np.int64)}
                     ).to_parquet(temporary_index, index=False)
        os.replace(temporary_array, array_path)
        os.replace(temporary_index, index_path)
    finally:
        temporary_array.unlink(missing_ok=True)
        temporary_index.unlink(missing_ok=True)
    seconds = time.perf_counter() - start_time
    return {"images": len(kept_names), "excluded": len(missing) + len(failures),
            "seconds": seconds, "images_per_second": len(present) / max(seconds, 1e-9)}


def compact_unreadable(array_path, keep):
    """Drop the rows of unreadable images, rewriting the array in place of the old one."""
    old = np.load(array_path, mmap_mode="r")
    compact_path = array_path.with_name(f".{array_path.stem}.compact.npy")
    compact = np.lib.format.open_memmap(compact_path, mode="w+", dtype=np.uint8,
                                        shape=(len(keep), *old.shape[1:]))
    compact[:] = old[keep]
    compact.flush()
    del old, compact
    os.replace(compact_path, array_path)


def load_cache(array_path, index_path):
    """The cache as (memory-mapped uint8 array, Series mapping image name to row)."""
    array = np.load(array_path, mmap_mode="r")
    index = pd.read_parquet(index_path)
    return array, pd.Series(index["row"].to_numpy(), index=index["image_index"].to_numpy())


def main(snakemake):
    names = images_in_splits(snakemake.input.splits)
    stats = build_cache(names, snakemake.input.images, int(snakemake.wildcards.size),
                        snakemake.output.images, snakemake.output.index,
                        workers=snakemake.threads,
                        skip_unreadable=snakemake.params.skip_unreadable)
    log.info("cached %d images at %s px in %.1f s (%.0f images/s on %d workers), %d excluded",
             stats["images"], snakemake.wildcards.size, stats["seconds"],
             stats["images_per_second"], snakemake.threads, stats["excluded"])


if __name__ == "__main__":
    run(snakemake, main)  # noqa: F821 - `snakemake` is injected by the rule's script directive
