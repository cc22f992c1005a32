"""Measurements shared by the CPU benchmark (run.py) and the GPU benchmark (gpu.py).

Every comparison runs both sides in the same process on the same machine, one after the
other, and reports their ratio; nothing is compared with a number from elsewhere.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

AUGMENTATION = {"rotation_degrees": 7, "zoom": 0.1, "shift": 0.1, "shear": 0.05,
                "horizontal_flip": True, "brightness": (0.4, 1.5)}


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - start, value


# -- data -------------------------------------------------------------------------------

def write_radiographs(folder, count, size=1024, seed=0):
    """`count` distinct synthetic radiograph PNGs at `size` px (the demo's renderer)."""
    from workflow_scripts.demo.metadata import sample_metadata
    from workflow_scripts.demo.rendering import render_radiograph
    from workflow_scripts.demo.writer import encode_png, image_specs

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    metadata = sample_metadata(max(count, 200), seed)
    specs = image_specs(metadata)
    paths = []
    for index in range(count):
        path = folder / f"{index:08d}_000.png"
        if not path.exists():
            image = render_radiograph(specs[index], seed=seed * 100_003 + index, size=size)
            path.write_bytes(encode_png(image))
        paths.append(path)
    return paths


def write_data_entry_csv(path, n_images=112_120, seed=0):
    """A full-size metadata CSV in the v2020 format, from the demo's label sampler."""
    from workflow_scripts.demo.metadata import data_entry_csv, sample_metadata

    path = Path(path)
    if not path.exists():
        path.write_text(data_entry_csv(sample_metadata(n_images, seed)))
    return path


# -- the paper's input pipeline: decode and augment every image, every epoch ------------

def paper_transform(image, rng):
    """ImageDataGenerator.random_transform with the paper's settings, per image in NumPy.

    As keras-preprocessing did: one affine matrix (rotation, shift, shear, zoom) applied
    with scipy.ndimage (order 1, fill 'nearest'), a horizontal flip, and PIL's
    ImageEnhance.Brightness for brightness_range.
    """
    from PIL import Image, ImageEnhance
    from scipy import ndimage

    height, width = image.shape
    theta = np.deg2rad(rng.uniform(-7, 7))
    tx, ty = rng.uniform(-0.1, 0.1) * height, rng.uniform(-0.1, 0.1) * width
    shear = np.deg2rad(rng.uniform(-0.05, 0.05))
    zx, zy = rng.uniform(0.9, 1.1, 2)
    rotation = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                         [0, 0, 1]])
    shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    shearing = np.array([[1, -np.sin(shear), 0], [0, np.cos(shear), 0], [0, 0, 1]])
    zoom = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    matrix = rotation @ shift @ shearing @ zoom
    offset = np.array([[1, 0, height / 2 + 0.5], [0, 1, width / 2 + 0.5], [0, 0, 1]])
    reset = np.array([[1, 0, -height / 2 - 0.5], [0, 1, -width / 2 - 0.5], [0, 0, 1]])
    matrix = offset @ matrix @ reset
    out = ndimage.affine_transform(image, matrix[:2, :2], matrix[:2, 2], order=1,
                                   mode="nearest")
    if rng.random() < 0.5:
        out = out[:, ::-1]
    bright = ImageEnhance.Brightness(Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)))
    return np.asarray(bright.enhance(rng.uniform(0.4, 1.5)), dtype=np.float32)


def paper_epoch(paths, size, seed=0):
    """One epoch the paper's way: PIL decode (Keras load_img), resize, augment, per image."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for path in paths:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L").resize((size, size), Image.NEAREST),
                                dtype=np.float32)
        paper_transform(pixels, rng)
    return len(paths)


# -- the product's input pipeline ---------------------------------------------------------

def cache_rates(paths, roots, folder, size, workers, repeats=5):
    """The cache builder's images/s over the images named like the PNG files `paths`, found
    under each of `roots`: the best of `repeats` runs per root, the roots alternated so that
    a slow spell of the machine does not fall on one of them only."""
    from workflow_scripts.build_image_cache import build_cache

    names = sorted({Path(p).name for p in paths})
    best = [0.0] * len(roots)
    for _ in range(repeats):
        for number, root in enumerate(roots):
            run = build_cache(names, root, size, Path(folder) / "images.npy",
                              Path(folder) / "index.parquet", workers=workers)
            best[number] = max(best[number], run["images_per_second"])
    return best


def write_archives(paths, folder, archives=2):
    """The PNG files `paths` as NIH ships them: images_001.tar.gz ... holding images/<name>,
    dealt out in turn. Reused if present."""
    import tarfile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(archives):
        archive = folder / f"images_{number + 1:03d}.tar.gz"
        if not archive.exists():
            temporary = archive.with_name(f".{archive.name}.tmp")
            with tarfile.open(temporary, "w:gz") as tar:
                for path in paths[number::archives]:
                    tar.add(path, arcname=f"images/{Path(path).name}")
            temporary.rename(archive)
    return folder


def cached_split(cache_folder, count):
    """SplitData of `count` rows cycling over the cache (a 2,000-image target)."""
    from workflow_scripts.image_cache import load_cache
    from workflow_scripts.input_pipeline import SplitData

    images, rows = load_cache(Path(cache_folder) / "images.npy",
                              Path(cache_folder) / "index.parquet")
    cycle = np.resize(rows.to_numpy(), count)
    labels = (np.arange(count) % 2).astype(np.float32)
    return images, SplitData(cycle, labels, np.arange(count).astype(str), np.arange(count))


def product_epoch(images, data, batch_size, augment_on_device=True):
    """One epoch of the product's input: cache gather (tf.data) + augmentation layer."""
    import tensorflow as tf

    from workflow_scripts.augmentation import PaperAugmentation
    from workflow_scripts.input_pipeline import training_dataset

    layer = PaperAugmentation(**AUGMENTATION, seed=0)
    augment = tf.function(lambda batch: layer(tf.cast(batch, tf.float32), training=True))
    count = 0
    for batch, _ in training_dataset(images, data, batch_size, 0, 0, 1):
        if augment_on_device:
            batch = augment(batch)
        count += int(batch.shape[0])
    return count


def augmentation_milliseconds(images, batch_size=32, batches=20, repeats=3):
    """Milliseconds per 224 px image of the augmentation's per-pixel work (affine resampling,
    brightness, clipping): the product's, compiled by XLA into one pass, against TensorFlow's
    ImageProjectiveTransform kernel followed by the same brightness and clipping ops (best
    of `repeats`), on the same batch with the same transforms."""
    import keras
    import tensorflow as tf

    from workflow_scripts.augmentation import resample_and_brighten_compiled

    batch = tf.constant(np.asarray(images[:batch_size])[..., None])
    rng = np.random.default_rng(0)
    angle, zoom = rng.uniform(-0.12, 0.12, batch_size), rng.uniform(0.9, 1.1, batch_size)
    inverse = np.stack([np.cos(angle) * zoom, -np.sin(angle), rng.uniform(-20, 20, batch_size),
                        np.sin(angle), np.cos(angle) * zoom, rng.uniform(-20, 20, batch_size)])
    inverse = tf.constant(inverse.astype(np.float32))
    brightness = tf.constant(rng.uniform(0.4, 1.5, batch_size).astype(np.float32))
    projective = tf.transpose(tf.concat([inverse, tf.zeros((2, batch_size))], axis=0))

    @tf.function
    def kernel(x):
        resampled = keras.ops.image.affine_transform(
            tf.cast(x, tf.float32), projective, interpolation="bilinear", fill_mode="nearest")
        return tf.clip_by_value(resampled * brightness[:, None, None, None], 0.0, 255.0)

    transforms = {"product": lambda x: resample_and_brighten_compiled(x, inverse, brightness),
                  "tensorflow": kernel}
    result = {}
    for name, transform in transforms.items():
        transform(batch)  # trace and compile
        best = min(timed(lambda t=transform: [t(batch).numpy() for _ in range(batches)])[0]
                   for _ in range(repeats))
        result[name] = 1000 * best / (batches * batch_size)
    return result


def pipeline_images_per_second(images, data, batch_size, epochs=2):
    """tf.data alone: batches gathered from the memory-mapped cache, nothing else."""
    from workflow_scripts.input_pipeline import training_dataset

    dataset = training_dataset(images, data, batch_size, 0, 0, epochs)
    for _ in dataset.take(2):  # warm-up
        pass
    seconds, count = timed(lambda: sum(int(b.shape[0]) for b, _ in dataset))
    return count / seconds


# -- training ------------------------------------------------------------------------------

def compiled_model(arch, size, jit_compile, mixed_precision=False, batch_size=32):
    import keras

    from workflow_scripts.models import build_model

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed_precision else "float32")
    model = build_model(arch, size, head="paper", augmentation=AUGMENTATION, xla=jit_compile)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="binary_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
    return model


def train_images_per_second(model, dataset, steps, warmup_steps):
    """images/s of model.fit over `steps` batches after `warmup_steps` (tracing excluded)."""
    batch_size = int(next(iter(dataset.take(1)))[0].shape[0])
    model.fit(dataset, steps_per_epoch=warmup_steps, epochs=1, verbose=0)
    seconds, _ = timed(model.fit, dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch_size / seconds


def in_memory_dataset(images, data, batch_size):
    """The same batch, already in memory as tensors, forever: the input-free ceiling."""
    import tensorflow as tf

    rows = data.rows[:batch_size]
    batch = (tf.constant(np.asarray(images[np.sort(rows)])[..., None]),
             tf.constant(data.labels[:batch_size][:, None]))
    return tf.data.Dataset.from_tensors(batch).repeat()


def real_dataset(images, data, batch_size, epochs):
    from workflow_scripts.input_pipeline import training_dataset

    return training_dataset(images, data, batch_size, 0, 0, epochs)


# -- workflow-level numbers ---------------------------------------------------------------

def parse_metadata_seconds(csv_path):
    from workflow_scripts.parse_metadata import parse_metadata

    parse_metadata(csv_path)  # warm the page cache and imports
    seconds, (table, summary) = timed(parse_metadata, csv_path)
    return seconds, table, summary


def split_targets():
    from workflow_scripts.labels import TARGETS

    return TARGETS


def all_splits_seconds(table):
    from workflow_scripts.make_split import make_split

    settings = {"seed": 42, "test_fraction": 0.2, "val_fraction": 0.1,
                "negatives_per_positive": 1.0, "negatives": {},
                "no_finding_vs_any": {"normal": 2800, "per_disease": 200}}
    seconds, _ = timed(lambda: [make_split(table, target, settings)
                                for target in split_targets()])
    return seconds


def dry_run_seconds(workdir, csv_path, images_folder):
    """`snakemake -n` of the full grid: 15 targets x 3 architectures x 7 policies x 3 seeds."""
    config = Path(workdir) / "grid.yaml"
    config.write_text(
        f"data: {{source: nih, metadata: {csv_path}, images: {images_folder}}}\n"
        "targets: [Atelectasis, Cardiomegaly, Consolidation, Edema, Effusion, Emphysema,"
        " Fibrosis, Hernia, Infiltration, Mass, Nodule, Pleural_Thickening, Pneumonia,"
        " Pneumothorax, no_finding_vs_any]\n"
        "architectures: [mobilenet, densenet121, alexnet]\nseeds: [0, 1, 2]\n")
    command = [sys.executable, "-m", "snakemake", "-n", "--quiet", "all", "--snakefile",
               str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", str(config)]
    environment = {**os.environ, "PYTHONWARNINGS": "ignore"}
    seconds, result = timed(subprocess.run, command, capture_output=True, text=True,
                            env=environment)
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    jobs = int(next(line.split()[-1] for line in result.stdout.splitlines()
                    if line.startswith("total")))
    return seconds, jobs


def table(rows):
    """Rows of (measurement, value, unit, note) as aligned text."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths,
                                                                            strict=True))
                     for row in rows)


def png_bytes(paths):
    return sum(Path(p).stat().st_size for p in paths) / len(paths)
