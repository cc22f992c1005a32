"""Reading CLR bounds off LR range test curves, and the checks that stop a bad pick."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow_scripts import lr_bounds
from workflow_scripts.lr_bounds import CheckSettings, checked_picks, choose_bounds, pick

STEPS = 243  # a one-epoch sweep of the paper's size: 7 decades, 35 rows per decade


def sweep_lrs(steps=STEPS, low=1e-7, high=1.0):
    return low * (high / low) ** (np.arange(steps) / (steps - 1))


def curve_of(data_loss, penalty=None, lrs=None):
    data_loss = np.asarray(data_loss, dtype=np.float64)
    lrs = sweep_lrs(len(data_loss)) if lrs is None else lrs
    penalty = np.zeros_like(data_loss) if penalty is None else np.asarray(penalty)
    return pd.DataFrame({"step": np.arange(len(data_loss)), "lr": lrs,
                         "loss": data_loss + penalty, "data_loss": data_loss,
                         "penalty": penalty})


def realistic_data_loss(rng, noise=0.03, steps=STEPS):
    """Plateau, a fall over two decades, a minimum near lr 0.03, then divergence."""
    x = np.log10(sweep_lrs(steps))
    clean = 0.69 - 0.25 / (1 + np.exp(-(x + 3) * 2)) + 0.5 * np.exp((x + 1.0) * 3)
    return clean + rng.normal(0, noise, steps), clean


def test_on_a_noiseless_u_shaped_curve_the_pick_is_within_125_percent_of_the_minimum():
    lrs = sweep_lrs()
    for true_minimum in (0.0225, 1e-3, 1e-5):
        u_shape = 0.3 + 0.1 * (np.log10(lrs) - np.log10(true_minimum)) ** 2
        usable, _, index = pick(curve_of(u_shape), "min_loss")
        picked = usable["lr"].iat[index]
        assert true_minimum / 1.25 <= picked <= true_minimum * 1.25, (true_minimum, picked)


def test_the_trailing_average_it_replaces_lags_by_over_a_decade():
    # The reason for the centred window: the paper's exponential average (beta 0.98) puts the
    # minimum of the same curve four times too high.
    lrs = sweep_lrs()
    u_shape = 0.3 + 0.1 * (np.log10(lrs) - np.log10(0.0225)) ** 2
    average, trailing = 0.0, []
    for step, value in enumerate(u_shape):
        average = 0.98 * average + 0.02 * value
        trailing.append(average / (1 - 0.98 ** (step + 1)))
    assert lrs[int(np.argmin(trailing))] > 3 * 0.0225


def test_a_realistic_curve_passes_and_min_loss_sits_near_the_true_minimum():
    rng = np.random.default_rng(0)
    noisy, clean = realistic_data_loss(rng)
    curve = curve_of(noisy)
    choice = choose_bounds(checked_picks(curve, stopped_early=True), "min_loss", "valley")
    assert choice is not None and choice.chosen.rule == "min_loss" and not choice.fallback_used
    true_minimum = curve["lr"].iat[int(np.argmin(clean))]
    assert true_minimum / 2 <= choice.chosen.max_lr <= true_minimum * 1.25
    assert choice.chosen.base_lr == pytest.approx(choice.chosen.max_lr / 4)
    assert choice.verdict == "min_loss passed every check"
    # The cautious rules pick lower rates, still on the falling stretch.
    assert choice.picks["steepest"].lr < choice.chosen.lr
    assert choice.picks["valley"].lr < choice.chosen.lr


def test_a_flat_noisy_curve_gives_no_bounds_and_the_pick_does_not_cling_to_the_start():
    rng = np.random.default_rng(1)
    at_first_row = 0
    for _ in range(400):
        curve = curve_of(0.69 + rng.normal(0, 0.05, STEPS))
        # Even if the sweep had diverged, the checks find the curve flat or noisy.
        for stopped_early in (False, True):
            assert choose_bounds(checked_picks(curve, stopped_early), "min_loss", "valley") is None
        at_first_row += pick(curve, "min_loss")[2] == 0
    # The trailing average's bias correction made the first usable row the pick in a third
    # of such sweeps; without it the first row is one of 243 (truncated windows are noisier).
    assert at_first_row / 400 < 0.06


def test_a_penalty_dominated_monotone_curve_gives_no_silent_pick_at_the_sweeps_end():
    # The paper's head at initialization: a penalty of about 15 that shrinks faster at high
    # learning rates, over a data loss that barely moves. The total loss falls to the end.
    rng = np.random.default_rng(2)
    x = np.linspace(0, 1, STEPS)
    penalty = 8.4 - 6.2 * x ** 2
    data_loss = 0.69 - 0.01 * x + rng.normal(0, 0.03, STEPS)
    curve = curve_of(data_loss, penalty)
    assert np.argmin(curve["loss"].rolling(9, center=True, min_periods=1).mean()) > 0.95 * STEPS
    picks = checked_picks(curve, stopped_early=False)
    assert choose_bounds(picks, "min_loss", "valley") is None
    reasons = lr_bounds.unusable_reasons(picks, "min_loss", "valley")
    assert "rule min_loss picked" in reasons and "rule valley picked" in reasons
    assert "falls only" in reasons and "never diverged" in reasons


def test_a_data_loss_falling_to_the_end_fails_min_loss_and_falls_back_when_allowed():
    rng = np.random.default_rng(3)
    x = np.log10(sweep_lrs())
    data_loss = 0.69 - 0.3 / (1 + np.exp(-(x + 3))) + rng.normal(0, 0.01, STEPS)
    curve = curve_of(data_loss)
    strict = checked_picks(curve, stopped_early=False)
    assert any("end of the sweep" in p for p in strict["min_loss"].problems)
    assert choose_bounds(strict, "min_loss", "valley") is None

    lenient = CheckSettings(require_divergence=False)
    choice = choose_bounds(checked_picks(curve, False, lenient), "min_loss", "valley")
    assert choice.fallback_used and choice.chosen.rule == "valley"
    assert choice.verdict.startswith("min_loss failed (the pick lies at the end of the sweep")
    assert choice.verdict.endswith("fallback valley passed and was used")
    assert choose_bounds(checked_picks(curve, False, lenient), "min_loss", "none") is None
    summary = choice.as_dict()
    assert summary["rule"] == "valley" and summary["configured_rule"] == "min_loss"
    assert summary["suggestions"]["min_loss"]["passed"] is False
    assert summary["max_lr"] == summary["suggestions"]["valley"]["max_lr"]


def test_a_pick_at_the_start_of_the_sweep_fails():
    x = np.log10(sweep_lrs())
    rising = 0.5 + 0.05 * (x + 7)
    problems = checked_picks(curve_of(rising), stopped_early=True)["min_loss"].problems
    assert problems[0].startswith("the pick lies at the start of the sweep (row 1 of 243")


def test_rules_on_a_known_curve():
    steps = np.arange(101)
    lrs = 1e-7 * 10 ** (7 * steps / 100)
    loss = np.empty(101)
    loss[:40] = 1.0
    loss[40:81] = 1.0 - 0.8 / (1 + np.exp(-(steps[40:81] - 55) / 4))  # steepest at 55
    loss[81:] = loss[80] + 0.05 * (steps[81:] - 80)
    curve = curve_of(loss, lrs=lrs)
    picks = {rule: pick(curve, rule, CheckSettings(smoothing_decades=0.2))[2]
             for rule in lr_bounds.RULES}
    assert picks["min_loss"] in (79, 80)  # the kink at 80, within the smoothing window
    assert picks["steepest"] in (54, 55, 56)
    assert 55 <= picks["valley"] <= 65  # the middle of the fall from the plateau to 80


def test_unusable_rows_are_skipped_and_too_few_named():
    rng = np.random.default_rng(0)
    curve = curve_of(realistic_data_loss(rng)[0])
    curve.loc[230:, "data_loss"] = np.nan  # the batches after the loss overflowed
    usable, _, _ = pick(curve, "min_loss")
    assert len(usable) == 230
    with pytest.raises(ValueError, match="2 usable row"):
        pick(curve.head(2), "valley")


def test_a_sweep_that_ran_to_its_end_has_diverged_if_the_loss_rose_after_its_minimum():
    rng = np.random.default_rng(4)
    noisy, _ = realistic_data_loss(rng)
    # The online stop did not fire, but the curve rose well after its minimum.
    choice = choose_bounds(checked_picks(curve_of(noisy), stopped_early=False), "min_loss",
                           "valley")
    assert choice is not None and choice.chosen.rule == "min_loss"
    # Cut the sweep before the rise: now it never saw a learning rate that is too high.
    x = np.log10(sweep_lrs())
    truncated = curve_of(noisy[x < -1.6], lrs=sweep_lrs()[x < -1.6])
    problems = checked_picks(truncated, stopped_early=False)["valley"].problems
    assert any(p.startswith("the sweep never diverged: after its minimum") for p in problems)


def fastai_valley(lrs, losses, num_it):
    """A line-by-line port of `valley` in fastai/callback/schedule.py (fastai 2.7, the
    default of `Learner.lr_find`), lists in place of tensors; returns (lr, index)."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[idx]), idx


def transfer_learning_loss(rng, steps=STEPS):
    """A pretrained model's sweep: a plateau, a fall over about 1.5 decades, an explosion."""
    x = np.log10(sweep_lrs(steps))
    clean = 0.55 - 0.2 / (1 + np.exp(-(x + 2.5) * 3)) + 0.3 * np.exp((x + 0.7) * 4)
    return clean + rng.normal(0, 0.04, steps)


@pytest.mark.parametrize("shape", ["transfer", "realistic", "u_shape", "plateau_then_fall",
                                   "noisy_flat", "staircase"])
def test_valley_is_fastais_pick_on_the_smoothed_data_loss(shape):
    rng = np.random.default_rng(7)
    x = np.log10(sweep_lrs())
    data_loss = {
        "transfer": lambda: transfer_learning_loss(rng),
        "realistic": lambda: realistic_data_loss(rng)[0],
        "u_shape": lambda: 0.3 + 0.1 * (x + 2) ** 2 + rng.normal(0, 0.02, STEPS),
        "plateau_then_fall": lambda: np.where(x < -3, 0.7, 0.7 - 0.1 * (x + 3))
        + rng.normal(0, 0.03, STEPS),
        "noisy_flat": lambda: 0.69 + rng.normal(0, 0.05, STEPS),
        "staircase": lambda: 0.7 - 0.05 * np.floor(x + 7) + 0.2 * np.maximum(x + 1, 0) ** 2,
    }[shape]()
    curve = curve_of(data_loss)
    usable, smoothed, index = pick(curve, "valley")
    lr, fastai_index = fastai_valley(usable["lr"].tolist(), smoothed.tolist(), STEPS)
    assert index == fastai_index
    assert usable["lr"].iat[index] == lr


def test_valley_picks_half_way_down_the_fall_on_a_transfer_learning_curve():
    # Well below the loss minimum's LR but on the fall, not decades below it at the plateau
    # (about 0.09x on these curves); min_loss passes there too.
    ratios = []
    for seed in range(20):
        curve = curve_of(transfer_learning_loss(np.random.default_rng(seed)))
        picks = checked_picks(curve, stopped_early=True)
        assert picks["min_loss"].passed and picks["valley"].passed
        ratios.append(picks["valley"].lr / picks["min_loss"].lr)
    assert 0.05 < np.median(ratios) < 0.5, ratios


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=40))
def test_valley_index_equals_the_fastai_port_on_any_sequence(values):
    # Small integers: ties and many equally long subsequences, where fastai's order of
    # updates decides the start.
    expected = fastai_valley(list(range(len(values))), values, len(values))[1]
    assert lr_bounds.valley_index(values) == max(0, expected)
