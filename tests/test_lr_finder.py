"""The LR range test: the sweep, the data loss apart from the penalty, early stopping on
divergence, and restored state."""

import math

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from workflow_scripts.lr_finder import CURVE_COLUMNS, LRFinderResult, chance_loss, find_lr


def regression_data(batches=16, batch_size=32):
    """y = x . w + noise: a problem a Dense model learns within a sweep, and diverges on."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batches * batch_size, 8)).astype("float32")
    w = rng.normal(size=(8, 1)).astype("float32")
    y = (x @ w + 0.1 * rng.normal(size=(len(x), 1))).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def small_model(jit_compile=False, optimizer=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(1),
        ]
    )
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss="mse",
        jit_compile=jit_compile,
    )
    return model


def state_of(model):
    return [v.numpy().copy() for v in model.variables + model.optimizer.variables]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_sweep_diverges_stops_early_and_restores_the_model(jit_compile):
    model = small_model(jit_compile)
    data = regression_data()
    model.fit(data.take(3), epochs=1, verbose=0, shuffle=False)  # momentum and step count != 0
    before = state_of(model)

    result = find_lr(model, data, min_lr=1e-5, max_lr=10.0, num_steps=200)

    assert isinstance(result, LRFinderResult)
    curve = result.curve
    assert list(curve.columns) == list(CURVE_COLUMNS)
    assert result.stopped_early and "exceeded 4 x its best" in result.stop_reason
    assert len(curve) < 200
    # No penalty in this model: the data loss is the loss.
    np.testing.assert_array_equal(curve["data_loss"], curve["loss"])
    assert (curve["penalty"] == 0).all()
    last, earlier = curve["smoothed_data_loss"].iloc[-1], curve["smoothed_data_loss"].iloc[:-1]
    assert last > 4 * earlier.min() and np.all(earlier <= 4 * earlier.cummin())
    assert curve["step"].tolist() == list(range(len(curve)))
    assert curve["lr"].iloc[0] == pytest.approx(1e-5)
    ratios = curve["lr"].iloc[1:].to_numpy() / curve["lr"].iloc[:-1].to_numpy()
    np.testing.assert_allclose(ratios, (10.0 / 1e-5) ** (1 / 199), rtol=1e-9)

    after = state_of(model)
    assert len(after) == len(before)
    for saved, restored in zip(before, after, strict=True):
        np.testing.assert_array_equal(saved, restored)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)


def test_the_online_average_follows_its_formula_with_bias_correction():
    result = find_lr(small_model(), regression_data(), min_lr=1e-5, max_lr=10.0, num_steps=200)
    beta, average = 0.98, 0.0
    for step, loss in enumerate(result.curve["data_loss"].iloc[:20]):
        average = beta * average + (1 - beta) * loss
        expected = average / (1 - beta ** (step + 1))
        assert result.curve["smoothed_data_loss"].iloc[step] == pytest.approx(expected)


def penalized_model(data_loss_metric=True):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, activation="relu",
                           kernel_regularizer=keras.regularizers.L2(0.5)),
        keras.layers.Dense(1),
    ])
    metrics = [keras.metrics.MeanSquaredError(name="data_loss")] if data_loss_metric else []
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", metrics=metrics)
    return model


def test_the_penalty_is_recorded_apart_from_the_data_loss():
    result = find_lr(penalized_model(), regression_data(), min_lr=1e-5, max_lr=1e-2,
                     num_steps=20)
    curve = result.curve
    assert (curve["penalty"] > 1).all(), "L2 of 0.5 on a 16 x 8 kernel is far above 1"
    np.testing.assert_allclose(curve["data_loss"] + curve["penalty"], curve["loss"],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="regularization penalty.*no metric named 'data_loss'"):
        find_lr(penalized_model(data_loss_metric=False), regression_data(), num_steps=5)


def test_a_complete_sweep_ends_at_max_lr_over_a_repeated_dataset():
    data = regression_data(batches=4)
    result = find_lr(small_model(), data, min_lr=1e-6, max_lr=1e-3, num_steps=30)
    assert not result.stopped_early and result.stop_reason.startswith("all 30 steps ran")
    assert len(result.curve) == 30
    assert result.curve["lr"].iloc[-1] == pytest.approx(1e-3)


def test_a_non_finite_loss_stops_the_sweep():
    result = find_lr(
        small_model(),
        regression_data(),
        min_lr=1e-3,
        max_lr=1e12,
        num_steps=200,
        stop_factor=1e300,  # the float32 loss overflows long before this factor
    )
    assert result.stopped_early and result.stop_reason.startswith("the loss became")
    assert not math.isfinite(result.curve["loss"].iloc[-1])
    assert np.all(np.isfinite(result.curve["loss"].iloc[:-1]))


def test_sweep_bounds_that_cross_are_named():
    with pytest.raises(ValueError, match="min_lr must be below max_lr.*min_lr=1.0"):
        find_lr(small_model(), regression_data(batches=2), num_steps=5, min_lr=1.0, max_lr=1.0)


def test_the_loss_of_learning_nothing_is_the_mean_entropy_of_each_outputs_share():
    quarter = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert chance_loss(np.array([[1], [0], [0], [0]], np.float32)) == pytest.approx(quarter)
    # A label with no positive costs nothing to predict; the loss averages over outputs.
    labels = np.array([[1, 0, 1], [0, 0, 1], [0, 0, 0], [0, 0, 1]], np.float32)
    assert chance_loss(labels) == pytest.approx((quarter + 0 + quarter) / 3)


@pytest.mark.slow
def test_the_papers_head_on_a_tiny_target_reads_the_data_loss_and_checks_its_pick(tmp_path):
    from repository import schema_config
    from tiny_data import write_tiny_target

    from workflow_scripts.lr_bounds import CheckSettings
    from workflow_scripts.lr_finder import run_range_test, summarize, write_curve_and_figure

    split, images, index = write_tiny_target(tmp_path / "data")
    config = schema_config(train={"batch_size": 16, "threads": 1},
                           model={"head": "paper", "mobilenet_alpha": 0.25},
                           lr_finder={"epochs": 3})
    finder = config["lr_finder"]
    result = run_range_test(split=split, cache_images=images, cache_index=index,
                            arch="mobilenet", settings=config["train"], finder=finder,
                            model_settings=config["model"], image_size=32, target="Effusion")
    curve = result.curve
    # The head's L1/L2 penalties dwarf the cross-entropy at initialization.
    assert curve["penalty"].iloc[0] > 5 * curve["data_loss"].iloc[0]
    assert 0.3 < curve["data_loss"].iloc[:10].mean() < 1.5
    curve, summary, choice = summarize(result, finder, CheckSettings.from_config(finder))
    if choice is None:
        assert summary["verdict"].startswith("no usable bounds: rule min_loss picked")
    else:
        rows = len(curve)
        assert 0.05 * rows <= curve.index[curve["step"] == choice.chosen.step][0] < 0.95 * rows
        assert summary["verdict"] in (choice.verdict,)
    write_curve_and_figure(curve, summary, "Effusion", "mobilenet", tmp_path / "curve.csv",
                           tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert list(pd.read_csv(tmp_path / "curve.csv").columns)[-1] == "centred_data_loss"
