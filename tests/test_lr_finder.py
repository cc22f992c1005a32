"""The LR range test: the sweep, early stopping, restored state, and the three rules."""

import json
import math

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from workflow_scripts.lr_finder import RULES, LRFinderResult, find_lr, suggest
from workflow_scripts.schedules import make_schedule


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
    assert list(curve.columns) == ["step", "lr", "loss", "smoothed_loss"]
    assert result.stopped_early and "exceeded 4 x its best" in result.stop_reason
    assert len(curve) < 200
    last, earlier = curve["smoothed_loss"].iloc[-1], curve["smoothed_loss"].iloc[:-1]
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


def test_min_loss_suggestion_is_at_the_smoothed_minimum():
    result = find_lr(small_model(), regression_data(), min_lr=1e-5, max_lr=10.0, num_steps=200)
    curve = result.curve
    at_minimum = curve.loc[curve["smoothed_loss"].idxmin()]
    chosen = result.suggestions["min_loss"]
    assert chosen["step"] == at_minimum["step"]
    assert chosen["lr"] == chosen["max_lr"] == pytest.approx(at_minimum["lr"])
    assert chosen["base_lr"] == pytest.approx(chosen["max_lr"] / 4)
    # On this problem the loss falls over decades of LR before it diverges: the cautious
    # rules pick smaller rates than the minimum.
    assert result.suggestions["steepest"]["lr"] < chosen["lr"]
    assert result.suggestions["valley"]["lr"] < chosen["lr"]
    # The smoothing follows the stated formula with bias correction.
    beta, average = 0.98, 0.0
    for step, loss in enumerate(curve["loss"].iloc[:20]):
        average = beta * average + (1 - beta) * loss
        expected = average / (1 - beta ** (step + 1))
        assert curve["smoothed_loss"].iloc[step] == pytest.approx(expected)


def test_a_complete_sweep_ends_at_max_lr_over_a_repeated_dataset():
    data = regression_data(batches=4)
    result = find_lr(small_model(), data, min_lr=1e-6, max_lr=1e-3, num_steps=30)
    assert not result.stopped_early and result.stop_reason.startswith("all 30 steps ran")
    assert len(result.curve) == 30
    assert result.curve["lr"].iloc[-1] == pytest.approx(1e-3)
    assert set(result.suggestions) == set(RULES)


def test_sweep_length_in_epochs_counts_the_batches():
    data = regression_data(batches=4)
    assert len(find_lr(small_model(), data, max_lr=1e-3).curve) == 4  # one epoch
    assert len(find_lr(small_model(), data, max_lr=1e-3, epochs=0.25).curve) == 3  # minimum
    assert len(find_lr(small_model(), data, max_lr=1e-3, epochs=2.5).curve) == 10
    unknown_length = data.filter(lambda x, y: True)
    assert int(unknown_length.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    assert len(find_lr(small_model(), unknown_length, max_lr=1e-3, epochs=2).curve) == 8


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
    assert math.isfinite(result.suggestions["min_loss"]["max_lr"])


def test_to_json_dict_puts_the_chosen_rule_on_top():
    result = find_lr(small_model(), regression_data(), min_lr=1e-5, max_lr=10.0, num_steps=200)
    summary = json.loads(json.dumps(result.to_json_dict("valley")))
    assert summary["rule"] == "valley"
    assert summary["max_lr"] == result.suggestions["valley"]["max_lr"]
    assert summary["base_lr"] == result.suggestions["valley"]["base_lr"]
    assert set(summary["suggestions"]) == set(RULES)
    assert summary["stopped_early"] is True and summary["steps_run"] == len(result.curve)
    assert summary["sweep"]["min_lr"] == 1e-5 and summary["sweep"]["num_steps"] == 200
    with pytest.raises(ValueError, match="min_loss, steepest, valley"):
        result.to_json_dict("median")


def synthetic_curve():
    """Plateau (slightly rising), a fall with one noisy blip, then a rise: 101 steps."""
    steps = np.arange(101)
    lrs = 1e-7 * 10 ** (7 * steps / 100)
    smoothed = np.empty(101)
    smoothed[:40] = 1.0 + 1e-4 * steps[:40]
    # Falls fastest at step 55 (a logistic in the step, so in log LR).
    smoothed[40:81] = 1.0 - 0.8 / (1 + np.exp(-(steps[40:81] - 55) / 4))
    smoothed[72] = smoothed[71] + 0.01
    smoothed[81:] = smoothed[80] + 0.05 * (steps[81:] - 80)
    loss = smoothed + 0.01 * np.sin(steps)
    return pd.DataFrame({"step": steps, "lr": lrs, "loss": loss, "smoothed_loss": smoothed})


def test_rules_on_a_known_curve():
    curve = synthetic_curve()
    lr_of = dict(zip(curve["step"], curve["lr"], strict=True))
    minimum = suggest(curve, "min_loss")
    assert minimum["step"] == 80 and minimum["max_lr"] == lr_of[80]
    steepest = suggest(curve, "steepest")
    assert steepest["step"] in (54, 55, 56)
    # Longest decreasing run: the plateau's last point (39) down to the minimum (80), the
    # blip at 72 skipped; its middle is step 59 or 60.
    valley = suggest(curve, "valley")
    assert abs(valley["step"] - 59.5) <= 1
    for chosen in (minimum, steepest, valley):
        assert chosen["base_lr"] == pytest.approx(chosen["max_lr"] / 4)
        assert chosen["lr"] == chosen["max_lr"] == lr_of[chosen["step"]]
        assert isinstance(chosen["step"], int)


def test_rules_skip_non_finite_rows_and_the_settling_start():
    curve = synthetic_curve()
    curve.loc[90:, ["loss", "smoothed_loss"]] = np.nan
    curve.loc[2, "smoothed_loss"] = -100.0  # inside the skipped first tenth
    assert suggest(curve, "min_loss")["step"] == 80
    assert suggest(curve, "steepest")["step"] in (54, 55, 56)
    assert suggest(curve.astype({"step": "int32"}), "min_loss")["step"] == 80


def test_suggest_rejects_unknown_rules_and_unusable_curves():
    curve = synthetic_curve()
    with pytest.raises(ValueError, match="'median'.*min_loss, steepest, valley"):
        suggest(curve, "median")
    with pytest.raises(ValueError, match="smoothed_loss"):
        suggest(curve.drop(columns="smoothed_loss"), "min_loss")
    two_rows = curve.head(2)
    with pytest.raises(ValueError, match="2 usable row"):
        suggest(two_rows, "valley")
    three_rows = curve.head(3)
    assert suggest(three_rows, "steepest")["step"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_lr": 1.0, "max_lr": 1.0}, "min_lr must be below max_lr.*min_lr=1.0"),
        ({"min_lr": 0.0}, "min_lr must be positive.*0.0"),
        ({"max_lr": -1.0}, "max_lr.*-1.0"),
        ({"num_steps": 2}, "num_steps must be an integer >= 3, got 2"),
        ({"num_steps": 10, "epochs": 1}, "either num_steps or epochs"),
        ({"epochs": 0}, "epochs.*0"),
        ({"beta": 1.0}, r"beta must lie in \[0, 1\).*1.0"),
        ({"stop_factor": 1.0}, "stop_factor must exceed 1.*1.0"),
    ],
)
def test_bad_sweep_settings_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        find_lr(small_model(), regression_data(batches=2), **kwargs)


def test_models_the_sweep_cannot_drive_are_refused_untouched():
    data = regression_data(batches=2)
    scheduled = small_model(
        optimizer=keras.optimizers.SGD(
            make_schedule("triangular", base_lr=0.01, max_lr=0.1, step_size=2)
        )
    )
    before = state_of(scheduled)
    with pytest.raises(ValueError, match="float learning_rate"):
        find_lr(scheduled, data, num_steps=5)
    for saved, restored in zip(before, state_of(scheduled), strict=True):
        np.testing.assert_array_equal(saved, restored)

    uncompiled = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="not compiled"):
        find_lr(uncompiled, data, num_steps=5)

    batched = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    batched.compile(optimizer="sgd", loss="mse", steps_per_execution=4)
    with pytest.raises(ValueError, match="steps_per_execution=1"):
        find_lr(batched, data, num_steps=5)

    with pytest.raises(ValueError, match="infinite.*num_steps"):
        find_lr(small_model(), data.repeat(), epochs=1)
    with pytest.raises(ValueError, match="no batches"):
        find_lr(small_model(), data.take(0), num_steps=5)
    with pytest.raises(ValueError, match="tf.data.Dataset"):
        find_lr(small_model(), np.zeros((4, 8)), num_steps=5)
