"""The input pipeline: tf.data over the memory-mapped uint8 image cache.

No image is decoded here: a batch is a gather of cache rows (a memcpy), and everything else
(augmentation, scaling) runs in the model on the device. The training order of each epoch is
a stateless shuffle seeded by (seed, epoch), so a job resumed at epoch k sees exactly the
batches an uninterrupted job would have seen from epoch k on.

Every training batch is full: an epoch is the `steps_per_epoch` full batches of its shuffle,
and the few images left over (fewer than a batch) wait for a later epoch's shuffle. A last
batch of one image would put batch normalization in training mode on a single image.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import tensorflow as tf

from workflow_scripts.image_cache import load_cache
from workflow_scripts.labels import SPLITS, label_columns
from workflow_scripts.stage import InputError, log


@dataclass
class SplitData:
    """One split of one target, resolved to cache rows."""

    rows: np.ndarray  # int64 rows of the cache array
    labels: np.ndarray  # float32, images x outputs (labels.label_columns), 1 = disease
    image_index: np.ndarray
    patient_id: np.ndarray

    def __len__(self):
        return len(self.rows)

    @property
    def positives(self):
        """Images with a positive label."""
        return int(self.labels.max(axis=1).sum())


def load_target(split_path, cache_array_path, cache_index_path, target="target"):
    """(memory-mapped images, {split: SplitData}) for one target's split file; the labels
    are its `labels.label_columns`, one per output of the model."""
    images, cache_rows = load_cache(cache_array_path, cache_index_path)
    split = pd.read_parquet(split_path)
    cached = split["image_index"].isin(cache_rows.index)
    if not cached.all():
        # Only images excluded by data.skip_unreadable can be absent from the cache.
        log.warning("%s: %d images of the split are not in the cache (unreadable) and are "
                    "left out", target, int((~cached).sum()))
        split = split[cached]
    parts = {}
    for name in SPLITS:
        part = split[split["split"] == name]
        parts[name] = SplitData(
            rows=cache_rows.loc[part["image_index"]].to_numpy(np.int64),
            labels=part[list(label_columns(target))].to_numpy(np.float32),
            image_index=part["image_index"].to_numpy(str),
            patient_id=part["patient_id"].to_numpy(np.int64),
        )
    for name in ("train", "test"):
        data = parts[name]
        positives = data.labels.sum(axis=0)
        one_class = (positives == 0) | (positives == len(data))
        if one_class.all():
            raise InputError(
                f"{split_path}: the {name} split of {target} has {data.positives} positive and "
                f"{len(data) - data.positives} negative images; training and evaluation need both. "
                "Rebuild the split with more data or other fractions."
            )
        if one_class.any():  # some labels of a multi-label target
            absent = [column for column, alone in zip(label_columns(target), one_class,
                                                      strict=True) if alone]
            log.warning("%s: the %s split holds one class only of %s: %s", target, name,
                        ", ".join(absent), "the model cannot learn it" if name == "train"
                        else "its test AUROC is undefined and left out of the mean")
    return images, parts


def gather_batch(images, data):
    """A numpy function returning (images[..., None], labels) for positions in `data`."""
    def gather(positions):
        rows = data.rows[positions]
        order = np.argsort(rows)  # ascending rows read the memory map sequentially
        return images[rows[order]][..., None], data.labels[positions[order]]
    return gather


# Fixed parallelism, not tf.data's autotuning: a batch is a gather of cache rows, so two
# batches loading and two ready keep any device fed. The autotuner's background thread also
# made the end of every `fit` (deleting its iterator) wait for the thread's next wake-up,
# 20 to 50 seconds on a CPU job.
LOADING_BATCHES = 2
READY_BATCHES = 2


def as_batches(positions, images, data):
    size, outputs = images.shape[1], data.labels.shape[1]

    def load(batch_positions):
        batch_images, batch_labels = tf.numpy_function(
            gather_batch(images, data), [batch_positions], (tf.uint8, tf.float32),
            stateful=False)
        batch_images.set_shape((None, size, size, 1))
        batch_labels.set_shape((None, outputs))
        return batch_images, batch_labels

    options = tf.data.Options()
    options.autotune.enabled = False
    return (positions.map(load, num_parallel_calls=LOADING_BATCHES).prefetch(READY_BATCHES)
            .with_options(options))


def training_dataset(images, data, batch_size, seed, first_epoch, epochs):
    """Full batches of epochs first_epoch .. epochs-1, each shuffled by (seed, epoch)."""
    count = len(data)

    def epoch_positions(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=True)

    positions = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_positions)
    return as_batches(positions, images, data)


def evaluation_dataset(images, data, batch_size):
    """Batches in split order, for validation, test predictions and the benchmark."""
    positions = tf.data.Dataset.range(len(data)).batch(batch_size)
    return as_batches(positions, images, data)


def steps_per_epoch(data, batch_size, target="target"):
    """Full training batches per epoch (the remainder waits for a later epoch's shuffle)."""
    if len(data) < batch_size:
        raise InputError(f"{target}: its training split holds {len(data)} images, fewer than "
                         f"one batch of {batch_size}; lower train.batch_size for it (under "
                         f"overrides.{target}.train) or give it more images.")
    return len(data) // batch_size
