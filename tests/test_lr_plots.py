"""Plots of the policies and of the LR range test are written as readable PNGs."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from workflow_scripts.lr_finder import suggest
from workflow_scripts.lr_plots import plot_lr_finder, plot_schedules
from workflow_scripts.policies import POLICIES
from workflow_scripts.schedules import (
    make_schedule,
    schedule_params,
    schedule_values,
    steps_from_epochs,
)

PAPER_SETTINGS = {
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
}
STEPS_PER_EPOCH = 541


def paper_schedules(epochs):
    return {
        policy: make_schedule(
            policy, **schedule_params(policy, PAPER_SETTINGS, STEPS_PER_EPOCH, epochs)
        )
        for policy in POLICIES
    }


def read_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)
    assert pixels.std() > 0.05, "the figure is blank"
    return pixels


def test_every_policy_in_one_figure_one_panel_each(tmp_path):
    path = plot_schedules(
        paper_schedules(42),
        STEPS_PER_EPOCH,
        tmp_path / "figures" / "policies.png",
        title="Pneumothorax, 42 epochs",
        epochs=42,
    )
    pixels = read_png(path)
    height, width = pixels.shape[:2]
    assert width >= 900 and height >= 7 * 200  # 120 dpi: about 1.9 in per panel


@pytest.mark.parametrize("policy", POLICIES)
def test_each_policy_alone(tmp_path, policy):
    schedule = paper_schedules(36)[policy]
    path = plot_schedules(
        {policy: schedule}, STEPS_PER_EPOCH, tmp_path / f"{policy}.png", epochs=36
    )
    read_png(path)


def test_arrays_of_learning_rates_and_a_log_axis(tmp_path):
    step_size = steps_from_epochs(2, 20)
    values = {
        "triangular": schedule_values(
            make_schedule("triangular", base_lr=0.0075, max_lr=0.03, step_size=step_size), 720
        ),
        "one_cycle": schedule_values(make_schedule("one_cycle", max_lr=0.03, total_steps=720), 720),
    }
    read_png(plot_schedules(values, 20, tmp_path / "log.png", log_y=True))


def test_plot_schedules_rejects_what_it_cannot_draw(tmp_path):
    schedule = make_schedule("triangular", base_lr=0.0075, max_lr=0.03, step_size=10)
    with pytest.raises(ValueError, match="pass epochs="):
        plot_schedules({"triangular": schedule}, 20, tmp_path / "x.png")
    with pytest.raises(ValueError, match="empty"):
        plot_schedules({}, 20, tmp_path / "x.png")
    with pytest.raises(ValueError, match="steps_per_epoch.*0"):
        plot_schedules({"triangular": schedule}, 0, tmp_path / "x.png", epochs=2)
    with pytest.raises(ValueError, match="1-D"):
        plot_schedules({"grid": np.ones((3, 3))}, 20, tmp_path / "x.png")
    with pytest.raises(ValueError, match="log_y.*'zero'"):
        plot_schedules({"zero": np.zeros(5)}, 20, tmp_path / "x.png", log_y=True)
    assert not (tmp_path / "x.png").exists()


def finder_curve(steps=300, diverge_from=260):
    """A range test that falls, bottoms out near lr 3e-2 and explodes at the end."""
    rng = np.random.default_rng(0)
    step = np.arange(steps)
    lr = 1e-7 * 10 ** (7 * step / (steps - 1))
    log_lr = np.log10(lr)
    loss = 0.7 - 0.45 / (1 + np.exp(-(log_lr + 3.5) * 2)) + 0.02 * rng.normal(size=steps)
    loss[diverge_from:] += np.geomspace(0.01, 50, steps - diverge_from)
    smoothed, average = np.empty(steps), 0.0
    for i, value in enumerate(loss):
        average = 0.98 * average + 0.02 * value
        smoothed[i] = average / (1 - 0.98 ** (i + 1))
    return pd.DataFrame({"step": step, "lr": lr, "loss": loss, "smoothed_loss": smoothed})


@pytest.mark.parametrize("rule", ["min_loss", "steepest", "valley"])
def test_lr_finder_plot_marks_the_bounds(tmp_path, rule):
    curve = finder_curve()
    path = plot_lr_finder(
        curve,
        suggest(curve, rule),
        tmp_path / f"finder_{rule}.png",
        title=f"Pneumothorax, rule {rule}",
    )
    height, width = read_png(path).shape[:2]
    assert width >= 900 and height >= 500


def test_lr_finder_plot_rejects_incomplete_input(tmp_path):
    curve = finder_curve()
    with pytest.raises(ValueError, match="smoothed_loss"):
        plot_lr_finder(
            curve.drop(columns="smoothed_loss"), {"base_lr": 1, "max_lr": 4}, tmp_path / "x.png"
        )
    with pytest.raises(ValueError, match="'base_lr'"):
        plot_lr_finder(curve, {"max_lr": 4}, tmp_path / "x.png")
