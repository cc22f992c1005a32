"""Every policy against its reference implementation, step by step.

tests/reference/schedule_references.json holds what PyTorch's CyclicLR, OneCycleLR and
CosineAnnealingWarmRestarts, timm's CosineLRScheduler and transformers' get_wsd_schedule
computed (tests/reference/make_schedule_references.py, with the versions named in the file);
Keras' CosineDecay and CosineDecayRestarts are run here.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from workflow_scripts.policies import POLICIES, momentum_params
from workflow_scripts.schedules import make_momentum_schedule, make_schedule, schedule_values

REFERENCES = json.loads((Path(__file__).parent / "reference" / "schedule_references.json")
                        .read_text())
CASES = REFERENCES["cases"]
FLOAT32_PEAK = 1e-7  # float32's resolution (6e-8) of the peak, and a little more


def test_the_references_name_the_versions_that_made_them_and_cover_the_new_policies():
    assert set(REFERENCES["versions"]) == {"torch", "timm", "transformers"}
    assert all(REFERENCES["versions"].values())
    covered = {case["policy"] for case in CASES}
    assert {"triangular", "triangular2", "exp_range", "one_cycle", "cosine", "sgdr",
            "wsd"} <= covered <= set(POLICIES)
    assert any(case["params"].get("three_phase") for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["peer"][:70])
def test_each_policy_gives_its_references_learning_rate_and_momentum_at_every_step(case):
    steps = len(case["lr"])
    schedule = make_schedule(case["policy"], **case["params"])
    expected = np.array(case["lr"])
    # The formula in float64 to 1e-6 of each value; the optimizer's float32 values to
    # float32's resolution of the peak (a cosine's tail towards 0 keeps no more).
    np.testing.assert_allclose(schedule.policy(np.arange(steps, dtype=np.float64)), expected,
                               rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(schedule_values(schedule, steps), expected, rtol=1e-6,
                               atol=FLOAT32_PEAK * expected.max())
    if "momentum" in case:
        momentum = make_momentum_schedule(case["policy"], case["momentum"], **case["params"])
        np.testing.assert_allclose(schedule_values(momentum, steps),
                                   np.array(case["momentum_values"]), rtol=1e-6)


@pytest.mark.parametrize(("total", "warmup", "fraction"), [(150, 10, 0.01), (90, 0, 0.0),
                                                            (61, 17, 0.2)])
def test_cosine_is_keras_cosine_decay_with_warmup(total, warmup, fraction):
    max_lr = 0.1
    keras_schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=fraction * max_lr if warmup else max_lr,
        decay_steps=total - warmup, alpha=fraction,
        warmup_target=max_lr if warmup else None, warmup_steps=warmup)
    ours = make_schedule("cosine", max_lr=max_lr, total_steps=total, warmup_steps=warmup,
                         min_lr_fraction=fraction)
    # Keras' warm-up branches on a scalar step: one step at a time.
    theirs = [float(keras_schedule(step)) for step in range(total)]
    np.testing.assert_allclose(schedule_values(ours, total), theirs, rtol=1e-6,
                               atol=FLOAT32_PEAK * max_lr)


@pytest.mark.parametrize(("first", "mul", "decay", "fraction"), [(20, 2.0, 1.0, 0.0),
                                                                (20, 2.0, 0.5, 0.05),
                                                                (13, 1.0, 0.8, 0.0),
                                                                (7, 3.0, 0.7, 0.1)])
def test_sgdr_is_keras_cosine_decay_restarts(first, mul, decay, fraction):
    steps = 400
    keras_schedule = keras.optimizers.schedules.CosineDecayRestarts(
        0.1, first, t_mul=mul, m_mul=decay, alpha=fraction)
    ours = make_schedule("sgdr", max_lr=0.1, first_cycle_steps=first, cycle_mul=mul,
                         cycle_decay=decay, min_lr_fraction=fraction)
    ours_values, keras_values = schedule_values(ours, steps), schedule_values(keras_schedule, steps)
    # Keras finds the cycle through a float32 logarithm, which can land one cycle off exactly
    # at a restart (its value there is the previous cycle's end, not the new peak); ours
    # checks the cycle's ends. Everywhere else the two agree.
    off = np.flatnonzero(~np.isclose(ours_values, keras_values, rtol=1e-6,
                                     atol=FLOAT32_PEAK * 0.1))
    assert len(off) <= 2, off
    restarts = {round((mul ** cycle - 1) / (mul - 1) * first) if mul != 1 else cycle * first
                for cycle in range(12)}
    assert set(off.tolist()) <= restarts


def test_cycled_momentum_is_sgd_only_and_only_for_policies_that_cycle():
    settings = {"cycle_momentum": True, "optimizer": "sgd", "base_momentum": 0.85,
                "max_momentum": 0.95}
    assert momentum_params("triangular", settings) == {"base_momentum": 0.85,
                                                       "max_momentum": 0.95}
    assert momentum_params("cosine", settings) == {} == momentum_params("constant", settings)
    assert momentum_params("one_cycle", {**settings, "cycle_momentum": False}) == {}
    with pytest.raises(ValueError, match="optimizer is 'adam'"):
        momentum_params("one_cycle", {**settings, "optimizer": "adam"})
    with pytest.raises(ValueError, match="base <= max"):
        momentum_params("triangular", {**settings, "base_momentum": 0.99})
