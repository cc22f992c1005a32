"""Stage `build_image_cache`: decode every PNG that any split uses, once, into a uint8 array.

Decoding a 1024x1024 PNG costs about ten milliseconds of a core; doing it every epoch is what
made the original study take hours per epoch. Here each image is decoded once (libpng through
OpenCV; RGBA, RGB and 16-bit images become 8-bit gray), resized once to `image_size` with area
interpolation, and written into one `.npy` array that training memory-maps. `index.parquet`
maps image names to rows, and `summary.json` is the data check: what the splits needed, where
it was found, what could not be read, before any GPU time is spent.

The images are loose PNG files, NIH's tar.gz archives read as streams, or both
(`image_sources`). One worker streams each archive; loose files go in chunks to the others.
An image that is both a file and an archive member is read from the file. Workers write
their rows straight into the memory-mapped output, so no pixel data crosses a process
boundary. Outputs are written under temporary names and renamed at the end, so a failure
leaves nothing that looks finished.
"""

import json
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from workflow_scripts.image_cache import create_images, keep_rows, open_images, write_index
from workflow_scripts.image_sources import ArchiveError, find_images, png_members
from workflow_scripts.stage import InputError, atomic_path, log, run

SHOWN = 5  # names quoted in an error message
CHUNK = 64  # images per task: large enough to amortize scheduling, small enough to balance
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    """PNG bytes to (2-D uint8 array, whether it had colour or alpha channels); raises
    ValueError if they are not a readable PNG.

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
    if image.ndim == 2:
        return image, False
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code), True


@dataclass
class Decoded:
    """What one worker did: rows written, failures as (row or None, where, why), images
    converted from colour, and the PNG names an archive holds (for the data check)."""

    rows: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    converted: int = 0
    archive_names: dict = field(default_factory=dict)

    def add(self, other):
        self.rows += other.rows
        self.failures += other.failures
        self.converted += other.converted
        self.archive_names.update(other.archive_names)


def decode_into(array, row, data, size, done, where):
    try:
        image, converted = decode_gray(data)
        array[row] = resize_area(image, size)
    except ValueError as error:
        done.failures.append((row, where, str(error)))
        return
    done.rows.append(row)
    done.converted += converted


def decode_files(array_path, rows_and_paths, size):
    """Worker: decode loose PNG files into their rows of the memory-mapped array."""
    array = open_images(array_path, writable=True)
    done = Decoded()
    for row, path in rows_and_paths:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            done.failures.append((row, path, str(error)))
            continue
        decode_into(array, row, data, size, done, path)
    array.flush()
    return done


def decode_archive(array_path, archive, rows, size):
    """Worker: stream one archive and decode the members named in `rows` (name -> row)."""
    array = open_images(array_path, writable=True)
    done = Decoded(archive_names={archive: []})
    names = done.archive_names[archive]
    try:
        for name, data in png_members(archive, rows):
            names.append(name)
            if data is not None:
                decode_into(array, rows[name], data, size, done, f"{archive}, member {name}")
    except ArchiveError as error:
        if error.member is not None:  # found, but unreadable: not also counted as missing
            names.append(error.member)
        done.failures.append((rows.get(error.member), archive, str(error)))
    array.flush()
    return done


def decode_in_parallel(tasks, workers):
    """Run the (function, arguments) `tasks` in `workers` forked processes, started in the
    order given; return everything they did as one Decoded."""
    # One image per process and core, so OpenCV's own threads would only contend. Set in the
    # parent: no OpenCV thread pool may exist when the workers fork, since a child that
    # inherits the pool without its threads hangs as soon as it touches it.
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        if workers == 1:
            results = [function(*arguments) for function, arguments in tasks]
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
                futures = [pool.submit(function, *arguments) for function, arguments in tasks]
                results = [future.result() for future in futures]
    finally:
        cv2.setNumThreads(opencv_threads)
    total = Decoded()
    for result in results:
        total.add(result)
    return total


def images_in_splits(split_paths):
    """Per split file (named as its target): the distinct images it needs."""
    return {Path(path).stem: pd.read_parquet(path, columns=["image_index"])["image_index"].unique()
            for path in split_paths}


def build_cache(names, root, size, array_path, index_path, workers=1, skip_unreadable=False):
    """Decode `names` found under `root` into `array_path` (.npy) and `index_path` (.parquet);
    return the data check's numbers (see `summary`)."""
    start_time = time.perf_counter()
    sources = find_images(root)
    names = list(names)
    in_files = [name for name in names if name in sources.files]
    if not sources.archives:
        # Without archives, what is missing is known before anything is decoded.
        check_missing(set(names) - set(in_files), root, skip_unreadable)
    candidates = names if sources.archives else in_files
    rows = {name: row for row, name in enumerate(candidates)}
    from_archives = {name: rows[name] for name in candidates if name not in sources.files}
    with atomic_path(array_path) as temporary_array, atomic_path(index_path) as temporary_index:
        create_images(temporary_array, len(candidates), size)
        files = [(rows[name], sources.files[name]) for name in in_files]
        # Archives first: each is one long task, and loose files fill the other workers.
        tasks = [(decode_archive, (temporary_array, archive, from_archives, size))
                 for archive in sources.archives]
        tasks += [(decode_files, (temporary_array, files[start:start + CHUNK], size))
                  for start in range(0, len(files), CHUNK)]
        done = decode_in_parallel(tasks, workers)

        counts = Counter(name for members in done.archive_names.values() for name in members)
        twice = sorted(name for name in from_archives if counts[name] > 1)
        if twice:
            holders = [archive for archive, members in done.archive_names.items()
                       if twice[0] in members]
            raise InputError(
                f"data.images: {len(twice)} image(s) of the splits are in more than one "
                f"archive, e.g. {twice[0]} in {' and '.join(holders)}. Keep one copy of each "
                "archive under the images folder.")
        missing = sorted(set(names) - set(in_files) - set(counts))
        if done.failures and not skip_unreadable:
            raise InputError(
                f"data.images: {len(done.failures)} image(s) could not be read, e.g. "
                + "; ".join(f"{where} ({error})" for _, where, error in done.failures[:SHOWN])
                + ". Replace those files or archives (download or extract them again), or "
                "set data.skip_unreadable: true to exclude them."
            )
        check_missing(missing, root, skip_unreadable)
        for _, where, error in done.failures:
            log.warning("excluded unreadable image %s (%s)", where, error)
        for name in missing:
            log.warning("excluded missing image %s", name)
        keep = np.asarray(sorted(done.rows), dtype=np.int64)
        if len(keep) < len(candidates):
            # Drop the rows of unreadable images.
            keep_rows(temporary_array, keep, temporary_array.with_suffix(".compact.npy"))
        kept_names = np.asarray(candidates, dtype=object)[keep]
        write_index(temporary_index, kept_names)
    seconds = time.perf_counter() - start_time
    return {
        "images": len(kept_names),
        "needed": len(names),
        "found_as_files": len(in_files),
        "found_in_archives": sum(1 for name in from_archives if counts[name]),
        "found_as_files_and_in_archives": sum(1 for name in in_files if counts[name]),
        "archives": len(sources.archives),
        "missing": len(missing),
        "unreadable": len(done.failures),
        "excluded": len(names) - len(kept_names),
        "converted_from_rgba": done.converted,
        "seconds": seconds,
        "images_per_second": len(candidates) / max(seconds, 1e-9),
    }


def check_missing(missing, root, skip_unreadable):
    if missing and not skip_unreadable:
        missing = sorted(missing)
        raise InputError(
            f"data.images: {len(missing)} image(s) of the splits are not under {root}, neither "
            f"as PNG files nor in the archives, e.g. {', '.join(missing[:SHOWN])}. Put all "
            "twelve archives (or the PNGs they unpack to) there, or set "
            "data.skip_unreadable: true to exclude them."
        )


def data_check(stats, needed, index_path, size, workers):
    """The contents of summary.json: the builder's numbers, and per split (target) the
    images it needs (`images_in_splits`) and how many of them are in the cache."""
    cached = pd.read_parquet(index_path, columns=["image_index"])["image_index"].to_numpy()
    splits = {split: {"needed": len(names), "cached": int(np.isin(names, cached).sum())}
              for split, names in needed.items()}
    return {"image_size": size, "workers": workers, **stats, "splits": splits}


def main(snakemake):
    size, workers = int(snakemake.wildcards.size), snakemake.threads
    needed = images_in_splits(snakemake.input.splits)
    names = np.unique(np.concatenate(list(needed.values())))
    stats = build_cache(names, snakemake.input.images, size, snakemake.output.images,
                        snakemake.output.index, workers=workers,
                        skip_unreadable=snakemake.params.skip_unreadable)
    summary = data_check(stats, needed, snakemake.output.index, size, workers)
    with atomic_path(snakemake.output.summary) as temporary:
        temporary.write_text(json.dumps(summary, indent=2) + "\n")
    log.info("data check: the splits need %d images; found %d as PNG files and %d in %d "
             "archive(s) (%d both ways, read from the files), %d missing, %d unreadable, "
             "%d converted from RGBA to gray",
             stats["needed"], stats["found_as_files"], stats["found_in_archives"],
             stats["archives"], stats["found_as_files_and_in_archives"], stats["missing"],
             stats["unreadable"], stats["converted_from_rgba"])
    for split, counts in summary["splits"].items():
        log.info("  %s: %d images needed, %d cached", split, counts["needed"], counts["cached"])
    log.info("cached %d images at %d px in %.1f s (%.0f images/s on %d workers), %d excluded",
             stats["images"], size, stats["seconds"], stats["images_per_second"], workers,
             stats["excluded"])


if __name__ == "__main__":
    run(snakemake, main)  # noqa: F821 - `snakemake` is injected by the rule's script directive
