"""Learning-rate policies: exact values, epoch conversion, validation, serialization, resume."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from repository import schema

from workflow_scripts.labels import TARGETS
from workflow_scripts.paper_policies import (
    ExpRange,
    ModifiedTriangular2,
    OneCycle,
    Triangular,
    cycles_started,
    halving_never_restarts,
)
from workflow_scripts.policies import (
    POLICIES,
    REGISTRY,
    lr_bounds,
    parameters,
    schedule_params,
)
from workflow_scripts.policy_base import steps_from_epochs
from workflow_scripts.schedules import (
    CycledMomentumSGD,
    PolicySchedule,
    make_momentum_schedule,
    make_schedule,
    schedule_values,
)

# The paper's Pneumothorax run: 541 batches per epoch, step size 2 epochs, bounds from its
# LR finder (Table 8), 36 epochs of triangular.
PNEUMOTHORAX = {"base_lr": 0.0075, "max_lr": 0.03, "step_size": 1082}
STEPS_PER_EPOCH = 541

# The workflow's training block with the paper's defaults, plus keys other stages read.
PAPER_SETTINGS = {
    "epochs": 36,
    "batch_size": 32,
    "optimizer": "sgd",
    "learning_rate": 0.01,
    "decay": 0.0005,
    "base_lr": 0.0075,
    "max_lr": 0.03,
    "step_size_epochs": 2,
    "gamma": 0.99994,
    "reset_cycles": 3,
    "div_factor": 25,
    "final_div_factor": 10000,
    "pct_start": 0.3,
    "warmup_epochs": 1,
    "min_lr_fraction": 0.01,
    "first_cycle_epochs": 2,
    "cycle_mul": 2,
    "cycle_decay": 0.8,
    "cooldown_fraction": 0.2,
    "cooldown_shape": "1-sqrt",
}

EXAMPLE_PARAMS = {
    "constant": {"learning_rate": 0.01},
    "time_decay": {"learning_rate": 0.01, "decay": 0.0005},
    "triangular": PNEUMOTHORAX,
    "triangular2": PNEUMOTHORAX,
    "exp_range": {**PNEUMOTHORAX, "gamma": 0.99994},
    "modified_triangular2": {**PNEUMOTHORAX, "reset_cycles": 3},
    "one_cycle": {"max_lr": 0.03, "total_steps": 36 * STEPS_PER_EPOCH},
    "cosine": {"max_lr": 0.03, "total_steps": 36 * STEPS_PER_EPOCH, "warmup_steps": 541},
    "sgdr": {"max_lr": 0.03, "first_cycle_steps": 1082, "cycle_decay": 0.8},
    "wsd": {"max_lr": 0.03, "total_steps": 36 * STEPS_PER_EPOCH, "cooldown_steps": 3896,
            "warmup_steps": 541},
}


def lr_at(schedule, step):
    return float(schedule(step))


def test_policy_names_are_the_papers_seven_then_the_modern_three_in_order():
    assert POLICIES == (
        "constant",
        "time_decay",
        "triangular",
        "triangular2",
        "exp_range",
        "modified_triangular2",
        "one_cycle",
        "cosine",
        "sgdr",
        "wsd",
    )
    assert {p for p in POLICIES if lr_bounds(p)} == set(POLICIES) - {"constant", "time_decay"}
    assert "learning_rate" not in sum(parameters("one_cycle"), ())


def test_constant_is_the_same_at_every_step():
    schedule = make_schedule("constant", learning_rate=0.01)
    for step in (0, 1, 541, 10**6):
        assert lr_at(schedule, step) == pytest.approx(0.01, rel=1e-7)


def test_time_decay_divides_by_one_plus_decay_times_step():
    schedule = make_schedule("time_decay", learning_rate=0.01, decay=0.0005)
    assert lr_at(schedule, 0) == pytest.approx(0.01, rel=1e-7)
    assert lr_at(schedule, 1000) == pytest.approx(0.01 / 1.5, rel=1e-6)
    assert lr_at(schedule, 2000) == pytest.approx(0.005, rel=1e-6)
    assert lr_at(schedule, 19476) == pytest.approx(0.01 / (1 + 0.0005 * 19476), rel=1e-6)


def test_triangular_rises_for_a_step_size_then_falls_back():
    schedule = make_schedule("triangular", **PNEUMOTHORAX)
    expected = {
        0: 0.0075,
        541: 0.01875,
        1082: 0.03,
        1623: 0.01875,
        2164: 0.0075,
        2164 + 1082: 0.03,
        2164 + 1082 + 541: 0.01875,
    }
    for step, lr in expected.items():
        assert lr_at(schedule, step) == pytest.approx(lr, rel=1e-6), step


def test_36_epochs_at_step_size_2_epochs_make_9_full_triangular_cycles():
    step_size = steps_from_epochs(2, STEPS_PER_EPOCH)
    assert step_size == 1082
    schedule = make_schedule("triangular", base_lr=0.0075, max_lr=0.03, step_size=step_size)
    values = schedule_values(schedule, 36 * STEPS_PER_EPOCH)
    peaks = np.flatnonzero(np.isclose(values, 0.03, rtol=1e-6))
    troughs = np.flatnonzero(np.isclose(values, 0.0075, rtol=1e-6))
    assert peaks.tolist() == [1082 + 2164 * k for k in range(9)]
    assert troughs.tolist() == [2164 * k for k in range(9)]
    # The first step after the run would open cycle 10 at base_lr.
    assert lr_at(schedule, 36 * STEPS_PER_EPOCH) == pytest.approx(0.0075, rel=1e-6)


def test_triangular2_halves_the_amplitude_every_cycle():
    schedule = make_schedule("triangular2", **PNEUMOTHORAX)
    peaks = [lr_at(schedule, 1082 + 2164 * k) for k in range(4)]
    assert peaks == pytest.approx([0.03, 0.01875, 0.013125, 0.0103125], rel=1e-6)
    assert lr_at(schedule, 2164 + 541) == pytest.approx(0.0075 + 0.0225 / 2 / 2, rel=1e-6)


def test_modified_triangular2_restarts_the_halving_every_three_cycles():
    schedule = make_schedule("modified_triangular2", **PNEUMOTHORAX)
    peaks = [lr_at(schedule, 1082 + 2164 * k) for k in range(7)]
    assert peaks == pytest.approx(
        [0.03, 0.01875, 0.013125, 0.03, 0.01875, 0.013125, 0.03], rel=1e-6
    )
    troughs = [lr_at(schedule, 2164 * k) for k in range(7)]
    assert troughs == pytest.approx([0.0075] * 7, rel=1e-6)


def test_modified_triangular2_with_other_reset_lengths():
    every_two = make_schedule("modified_triangular2", **PNEUMOTHORAX, reset_cycles=2)
    peaks = [lr_at(every_two, 1082 + 2164 * k) for k in range(4)]
    assert peaks == pytest.approx([0.03, 0.01875, 0.03, 0.01875], rel=1e-6)
    every_cycle = make_schedule("modified_triangular2", **PNEUMOTHORAX, reset_cycles=1)
    triangular = make_schedule("triangular", **PNEUMOTHORAX)
    np.testing.assert_allclose(
        schedule_values(every_cycle, 5000), schedule_values(triangular, 5000), rtol=1e-6
    )


def test_exp_range_scales_the_amplitude_by_gamma_to_the_step():
    schedule = make_schedule("exp_range", **PNEUMOTHORAX, gamma=0.99994)
    for step, wave in ((0, 0.0), (541, 0.5), (1082, 1.0), (3246, 1.0), (10 * 2164 + 541, 0.5)):
        expected = 0.0075 + 0.0225 * wave * 0.99994**step
        assert lr_at(schedule, step) == pytest.approx(expected, rel=1e-6), step
    no_decay = make_schedule("exp_range", **PNEUMOTHORAX, gamma=1.0)
    triangular = make_schedule("triangular", **PNEUMOTHORAX)
    np.testing.assert_allclose(
        schedule_values(no_decay, 5000), schedule_values(triangular, 5000), rtol=1e-6
    )


def test_one_cycle_warms_up_then_anneals_as_pytorch_one_cycle_lr():
    schedule = make_schedule("one_cycle", max_lr=0.1, total_steps=1000)
    initial, final = 0.1 / 25, 0.1 / 25 / 1e4
    # PyTorch: peak at step pct_start * total_steps - 1 = 299, cosine on both sides.
    assert lr_at(schedule, 0) == pytest.approx(initial, rel=1e-6)
    assert lr_at(schedule, 299) == pytest.approx(0.1, rel=1e-6)
    warm = 0.1 + (initial - 0.1) / 2 * (1 + math.cos(math.pi * 100 / 299))
    assert lr_at(schedule, 100) == pytest.approx(warm, rel=1e-5)
    midway = final + (0.1 - final) / 2  # half way through the 700-step anneal
    assert lr_at(schedule, 299 + 350) == pytest.approx(midway, rel=1e-5)
    assert lr_at(schedule, 999) == pytest.approx(final, rel=1e-5)
    assert lr_at(schedule, 5000) == pytest.approx(final, rel=1e-5)
    values = schedule_values(schedule, 1000)
    assert int(np.argmax(values)) == 299
    assert np.all(np.diff(values[:300]) > 0) and np.all(np.diff(values[299:]) < 0)


def test_one_cycle_honours_its_factors():
    schedule = make_schedule(
        "one_cycle",
        max_lr=0.03,
        total_steps=100,
        div_factor=10,
        final_div_factor=100,
        pct_start=0.5,
    )
    assert lr_at(schedule, 0) == pytest.approx(0.003, rel=1e-6)
    assert lr_at(schedule, 49) == pytest.approx(0.03, rel=1e-6)
    assert lr_at(schedule, 99) == pytest.approx(0.00003, rel=1e-5)


@pytest.mark.parametrize("policy", ["triangular2", "exp_range", "modified_triangular2"])
def test_scale_stays_finite_after_thousands_of_cycles(policy):
    params = {
        "base_lr": 0.0075,
        "max_lr": 0.03,
        "step_size": 1,
        **({"gamma": 0.5} if policy == "exp_range" else {}),
    }
    schedule = make_schedule(policy, **params)
    values = schedule_values(schedule, 20_000)  # 10,000 cycles
    assert np.all(np.isfinite(values))
    assert np.all(values >= 0.0075 * (1 - 1e-6)) and np.all(values <= 0.03 * (1 + 1e-6))
    for step in (10**6 + 1, 10**7 + 1):
        assert math.isfinite(lr_at(schedule, step))


def test_schedules_run_inside_an_xla_compiled_function():
    for policy, params in EXAMPLE_PARAMS.items():
        schedule = make_schedule(policy, **params)
        compiled = tf.function(schedule, jit_compile=True)
        for step in (0, 700, 5000):
            eager = lr_at(schedule, step)
            assert float(compiled(tf.constant(step, tf.int64))) == pytest.approx(eager, rel=1e-6)


def test_schedule_values_matches_step_by_step_evaluation():
    for policy, params in EXAMPLE_PARAMS.items():
        schedule = make_schedule(policy, **params)
        values = schedule_values(schedule, 3000)
        assert values.shape == (3000,) and values.dtype == np.float64
        for step in (0, 1, 541, 1082, 2999):
            assert values[step] == lr_at(schedule, step), (policy, step)


def test_steps_from_epochs_rounds_and_is_at_least_one():
    assert steps_from_epochs(2, 541) == 1082
    assert steps_from_epochs(8, 541) == 4328
    assert steps_from_epochs(0.5, 541) == 271
    assert steps_from_epochs(0.5, 4) == 2
    assert steps_from_epochs(0.1, 3) == 1


@pytest.mark.parametrize("policy", POLICIES)
def test_schedule_params_picks_exactly_what_each_policy_takes(policy):
    params = schedule_params(policy, PAPER_SETTINGS, steps_per_epoch=541, total_epochs=36)
    required, optional = parameters(policy)
    assert set(required) <= set(params) <= set(required + optional)
    if "step_size" in params:
        assert params["step_size"] == 1082
    if policy == "one_cycle":
        assert params["total_steps"] == 541 * 36
    assert make_schedule(policy, **params).get_config() is not None


class ReadSettings(dict):
    """Settings that remember which keys were read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


@pytest.mark.parametrize("policy", POLICIES)
def test_every_setting_a_policy_reads_is_declared_and_required_ones_name_themselves(policy):
    declared = schema()["$defs"]["train_settings"]["properties"]
    settings_ = ReadSettings(PAPER_SETTINGS)
    params = schedule_params(policy, settings_, steps_per_epoch=541, total_epochs=36)
    assert settings_.read and settings_.read <= set(declared), settings_.read - set(declared)
    for key in settings_.read:
        # A renamed or dropped key: an error naming it, or the policy's own default.
        renamed = {k: v for k, v in PAPER_SETTINGS.items() if k != key}
        try:
            without = schedule_params(policy, renamed, steps_per_epoch=541, total_epochs=36)
        except ValueError as error:
            assert repr(key) in str(error)
        else:
            assert set(without) == set(params) - {key}


def test_schedule_params_reports_a_missing_setting_by_its_key():
    unresolved = {**PAPER_SETTINGS, "max_lr": None}
    with pytest.raises(ValueError, match="'max_lr'.*LR finder"):
        schedule_params("triangular", unresolved, steps_per_epoch=541, total_epochs=36)
    without_step_size = {k: v for k, v in PAPER_SETTINGS.items() if k != "step_size_epochs"}
    with pytest.raises(ValueError, match="step_size_epochs"):
        schedule_params("triangular2", without_step_size, steps_per_epoch=541, total_epochs=36)
    without_reset = {k: v for k, v in PAPER_SETTINGS.items() if k != "reset_cycles"}
    params = schedule_params("modified_triangular2", without_reset, 541, 36)
    assert "reset_cycles" not in params and make_schedule("modified_triangular2", **params)


@pytest.mark.parametrize(
    ("policy", "params", "message"),
    [
        # The schema checks each setting alone; what two settings or the run's length decide
        # is checked here.
        ("triangular", {"base_lr": 0.03, "max_lr": 0.03, "step_size": 10}, "base_lr=0.03"),
        ("triangular", {"base_lr": 0.1, "max_lr": 0.03, "step_size": 10}, "base_lr must be below"),
        ("one_cycle", {"max_lr": 0.1, "total_steps": 3, "pct_start": 0.3}, "warm-up"),
    ],
)
def test_bad_parameters_name_themselves(policy, params, message):
    with pytest.raises(ValueError, match=message):
        make_schedule(policy, **params)


@pytest.mark.parametrize("policy", POLICIES)
def test_config_round_trip_keeps_every_value(policy):
    schedule = make_schedule(policy, **EXAMPLE_PARAMS[policy])
    config = schedule.get_config()
    assert json.loads(json.dumps(config)) == config
    rebuilt = type(schedule).from_config(config)
    serialized = keras.saving.serialize_keras_object(schedule)
    assert serialized["registered_name"].startswith("clr>")
    deserialized = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(deserialized) is PolicySchedule and type(rebuilt) is PolicySchedule
    expected = schedule_values(schedule, 4000)
    np.testing.assert_array_equal(schedule_values(rebuilt, 4000), expected)
    np.testing.assert_array_equal(schedule_values(deserialized, 4000), expected)


@settings(max_examples=40, deadline=None)
@given(
    base_lr=st.floats(1e-6, 0.5),
    ratio=st.floats(1.01, 1000.0),
    step_size=st.integers(1, 50),
    policy=st.sampled_from(["triangular", "triangular2", "exp_range", "modified_triangular2"]),
)
def test_cyclical_policies_stay_within_bounds_and_touch_base_each_cycle(
    base_lr, ratio, step_size, policy
):
    max_lr = base_lr * ratio
    params = {"base_lr": base_lr, "max_lr": max_lr, "step_size": step_size}
    if policy == "exp_range":
        params["gamma"] = 0.999
    values = schedule_values(make_schedule(policy, **params), 10 * step_size + 1)
    assert np.all(values >= base_lr * (1 - 1e-6)) and np.all(values <= max_lr * (1 + 1e-6))
    np.testing.assert_allclose(values[:: 2 * step_size], base_lr, rtol=1e-5)
    first_peak = (
        max_lr if policy != "exp_range" else (base_lr + (max_lr - base_lr) * 0.999**step_size)
    )
    assert values[step_size] == pytest.approx(first_peak, rel=1e-5)


class RecordLearningRate(keras.callbacks.Callback):
    """The learning rate the optimizer applies to each batch, read before the batch runs."""

    def __init__(self):
        super().__init__()
        self.steps = []
        self.learning_rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.steps.append(int(self.model.optimizer.iterations.numpy()))
        self.learning_rates.append(float(self.model.optimizer.learning_rate))


def tiny_model(schedule):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mse")
    return model


def tiny_dataset():
    x = np.linspace(-1, 1, 15, dtype="float32").reshape(5, 3)
    return tf.data.Dataset.from_tensor_slices((x, x.sum(axis=1))).batch(2)  # 3 steps


RESUME_PARAMS = {
    **EXAMPLE_PARAMS,
    "triangular": {"base_lr": 0.01, "max_lr": 0.05, "step_size": 2},
    "triangular2": {"base_lr": 0.01, "max_lr": 0.05, "step_size": 2},
    "exp_range": {"base_lr": 0.01, "max_lr": 0.05, "step_size": 2, "gamma": 0.9},
    "modified_triangular2": {"base_lr": 0.01, "max_lr": 0.05, "step_size": 1, "reset_cycles": 2},
    "one_cycle": {"max_lr": 0.05, "total_steps": 12},
    "cosine": {"max_lr": 0.05, "total_steps": 12, "warmup_steps": 2},
    "sgdr": {"max_lr": 0.05, "first_cycle_steps": 2, "cycle_mul": 2.0},
    "wsd": {"max_lr": 0.05, "total_steps": 12, "cooldown_steps": 4, "warmup_steps": 2},
}


@pytest.mark.parametrize("policy", POLICIES)
def test_resumed_training_sees_the_learning_rates_of_an_uninterrupted_run(tmp_path, policy):
    data = tiny_dataset()
    uninterrupted = RecordLearningRate()
    tiny_model(make_schedule(policy, **RESUME_PARAMS[policy])).fit(
        data, epochs=4, verbose=0, shuffle=False, callbacks=[uninterrupted]
    )

    first_half, second_half = RecordLearningRate(), RecordLearningRate()
    model = tiny_model(make_schedule(policy, **RESUME_PARAMS[policy]))
    model.fit(data, epochs=2, verbose=0, shuffle=False, callbacks=[first_half])
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    restored.fit(data, epochs=4, initial_epoch=2, verbose=0, shuffle=False, callbacks=[second_half])

    assert uninterrupted.steps == list(range(12))
    assert first_half.steps + second_half.steps == uninterrupted.steps
    resumed = first_half.learning_rates + second_half.learning_rates
    assert resumed == uninterrupted.learning_rates
    if policy != "constant":
        assert len(set(resumed)) > 1
    saved_schedule = restored.optimizer.get_config()["learning_rate"]
    assert saved_schedule["registered_name"].startswith("clr>")
    assert keras.saving.deserialize_keras_object(saved_schedule).get_config() == (
        make_schedule(policy, **RESUME_PARAMS[policy]).get_config()
    )


def test_each_policy_is_one_class_that_evaluates_with_numpy_and_keras_alike():
    assert isinstance(make_schedule("triangular", **PNEUMOTHORAX).policy, Triangular)
    assert isinstance(make_schedule("exp_range", **PNEUMOTHORAX, gamma=0.9).policy, ExpRange)
    assert isinstance(make_schedule("modified_triangular2", **PNEUMOTHORAX).policy,
                      ModifiedTriangular2)
    assert isinstance(make_schedule("one_cycle", max_lr=0.1, total_steps=10).policy, OneCycle)
    with pytest.raises(ValueError, match="max_lr"):
        Triangular(base_lr=0.1, max_lr=0.01, step_size=2)
    steps = np.arange(4000, dtype=np.float64)
    for policy in POLICIES:
        schedule = make_schedule(policy, **EXAMPLE_PARAMS[policy])
        # float32 against float64: a cosine's last steps towards 0 differ by float32's
        # resolution of the peak, not of the value.
        np.testing.assert_allclose(schedule.policy(steps), schedule_values(schedule, 4000),
                                   rtol=1e-5, atol=1e-9)


def test_the_schema_lists_exactly_the_registered_policies_and_the_targets():
    declared = schema()
    assert tuple(declared["$defs"]["policy"]["enum"]) == POLICIES
    assert tuple(declared["$defs"]["target"]["enum"]) == TARGETS
    paper = [name for name in POLICIES if REGISTRY[name].__module__.endswith("paper_policies")]
    assert declared["properties"]["policies"]["default"] == paper == list(POLICIES[:7])


@settings(max_examples=60, deadline=None)
@given(epochs=st.integers(1, 40), step_size_epochs=st.sampled_from([0.3, 0.5, 1, 1.5, 2, 2.5, 3]),
       reset_cycles=st.integers(1, 4), steps_per_epoch=st.integers(1, 60),
       policy=st.sampled_from(["modified_triangular2", "exp_range", "time_decay"]))
def test_a_schedule_twin_gives_the_same_learning_rate_at_every_step(
        epochs, step_size_epochs, reset_cycles, steps_per_epoch, policy):
    """same_schedule_as decides from the config alone; the schedules themselves agree."""
    settings_ = {**PAPER_SETTINGS, "epochs": epochs, "step_size_epochs": step_size_epochs,
                 "reset_cycles": reset_cycles, "gamma": 1.0, "decay": 0.0}
    twin = REGISTRY[policy].same_schedule_as(settings_)
    assert twin is not None or policy == "modified_triangular2"
    steps = epochs * steps_per_epoch
    ours = schedule_values(make_schedule(policy, **schedule_params(
        policy, settings_, steps_per_epoch, epochs)), steps)
    if twin is not None:
        theirs = schedule_values(make_schedule(twin, **schedule_params(
            twin, settings_, steps_per_epoch, epochs)), steps)
        np.testing.assert_array_equal(ours, theirs)


def test_modified_triangular2_is_triangular2_until_its_halving_restarts():
    # Every steps-per-epoch count from 1 to 400 against the config-only decision.
    for epochs in range(1, 30):
        for step_size_epochs in (0.5, 0.7, 1, 1.25, 2, 2.5):
            for reset_cycles in (1, 2, 3, 4):
                restarts_somewhere = any(
                    cycles_started(epochs, step_size_epochs, steps) > reset_cycles
                    for steps in range(1, 401))
                assert halving_never_restarts(epochs, step_size_epochs, reset_cycles) == (
                    not restarts_somewhere), (epochs, step_size_epochs, reset_cycles)
    # The paper's grid: 10 and 12 epochs at a step size of 2 epochs are triangular2; 30 are not.
    assert ModifiedTriangular2.same_schedule_as({**PAPER_SETTINGS, "epochs": 12}) == "triangular2"
    assert ModifiedTriangular2.same_schedule_as({**PAPER_SETTINGS, "epochs": 13}) is None
    assert ExpRange.same_schedule_as(PAPER_SETTINGS) is None


@pytest.mark.parametrize("policy", ["triangular", "one_cycle"])
def test_a_resumed_run_with_cycled_momentum_continues_momentum_and_weights_exactly(
        tmp_path, policy):
    momentum = {"base_momentum": 0.8, "max_momentum": 0.95}

    def model_with_cycled_momentum():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        params = RESUME_PARAMS[policy]
        model.compile(loss="mse", optimizer=CycledMomentumSGD(
            make_schedule(policy, **params), make_momentum_schedule(policy, momentum, **params)))
        return model

    class RecordMomentum(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.momenta = []

        def on_train_batch_begin(self, batch, logs=None):
            optimizer = self.model.optimizer
            self.momenta.append(float(optimizer.momentum_schedule(optimizer.iterations)))

    data = tiny_dataset()
    uninterrupted = RecordMomentum()
    whole = model_with_cycled_momentum()
    whole.fit(data, epochs=4, verbose=0, shuffle=False, callbacks=[uninterrupted])

    first_half, second_half = RecordMomentum(), RecordMomentum()
    model = model_with_cycled_momentum()
    model.fit(data, epochs=2, verbose=0, shuffle=False, callbacks=[first_half])
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert type(restored.optimizer) is CycledMomentumSGD
    restored.fit(data, epochs=4, initial_epoch=2, verbose=0, shuffle=False,
                 callbacks=[second_half])

    assert first_half.momenta + second_half.momenta == uninterrupted.momenta
    assert min(uninterrupted.momenta) < 0.9 < max(uninterrupted.momenta)
    for resumed, straight in zip(restored.get_weights(), whole.get_weights(), strict=True):
        np.testing.assert_array_equal(resumed, straight)
