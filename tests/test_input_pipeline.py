"""The training input: full batches only, and a reproducible shuffle per (seed, epoch)."""

import numpy as np
import pandas as pd
import pytest
from tiny_data import write_tiny_target

from workflow_scripts.input_pipeline import (
    evaluation_dataset,
    load_target,
    steps_per_epoch,
    training_dataset,
)
from workflow_scripts.labels import DISEASES, MULTILABEL
from workflow_scripts.stage import InputError


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    images, parts = load_target(*write_tiny_target(tmp_path_factory.mktemp("data")))
    return images, parts["train"]


def test_every_training_batch_is_full_and_the_leftover_images_change_per_epoch(target):
    images, train = target
    batch_size = 32
    assert len(train) % batch_size not in (0, 1), "the fixture must leave a remainder"
    steps = steps_per_epoch(train, batch_size)
    assert steps == len(train) // batch_size
    batches = list(training_dataset(images, train, batch_size, seed=0, first_epoch=0,
                                    epochs=2))
    assert len(batches) == 2 * steps
    assert {len(labels) for _, labels in batches} == {batch_size}
    # The images of a batch are gathered in row order; compare the sets each epoch used.
    seen = [np.concatenate([x.numpy().reshape(len(x), -1) for x, _ in batches[e * steps:
                                                                           (e + 1) * steps]])
            for e in (0, 1)]
    first, second = ({row.tobytes() for row in epoch} for epoch in seen)
    assert len(first) == len(second) == steps * batch_size
    assert first != second, "each epoch's shuffle leaves other images out"


def test_resuming_at_an_epoch_gives_the_same_batches(target):
    images, train = target
    whole = list(training_dataset(images, train, 16, seed=3, first_epoch=0, epochs=3))
    resumed = list(training_dataset(images, train, 16, seed=3, first_epoch=2, epochs=3))
    steps = steps_per_epoch(train, 16)
    for (x, y), (x_resumed, y_resumed) in zip(whole[2 * steps:], resumed, strict=True):
        np.testing.assert_array_equal(x, x_resumed)
        np.testing.assert_array_equal(y, y_resumed)


def test_a_training_split_smaller_than_a_batch_is_named(target):
    _, train = target
    with pytest.raises(InputError, match=r"Hernia: its training split holds \d+ images, "
                                         r"fewer than one batch of 4096; lower "
                                         r"train.batch_size"):
        steps_per_epoch(train, 4096, "Hernia")


def test_a_multilabel_batch_holds_every_diseases_label(tmp_path):
    split, *cache = write_tiny_target(tmp_path, multilabel=True)
    images, parts = load_target(split, *cache, MULTILABEL)
    test = parts["test"]
    assert test.labels.shape == (len(test), len(DISEASES))
    labels = np.concatenate([y.numpy() for _, y in evaluation_dataset(images, test, 16)])
    frame = pd.read_parquet(split).set_index("image_index").loc[test.image_index]
    np.testing.assert_array_equal(labels, frame[list(DISEASES)].to_numpy(np.float32))
    _, y = next(iter(training_dataset(images, parts["train"], 16, seed=0, first_epoch=0,
                                      epochs=1)))
    assert y.shape == (16, len(DISEASES))
