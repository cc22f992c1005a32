"""Figures of the learning-rate policies and of the LR range test, as PNG files.

`plot_schedules` draws the learning rate against training epochs, one panel per policy (the
paper's Figures 4 and 5); `plot_lr_finder` draws loss against learning rate with the chosen
CLR bounds marked (its Figure 6). Figures are drawn on matplotlib's Agg canvas without
pyplot, so no global figure state is kept and nothing needs a display.
"""

import math
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from workflow_scripts.schedules import LearningRateSchedule, schedule_values

DPI = 120
PANEL_HEIGHT_INCHES = 1.9
FIGURE_WIDTH_INCHES = 9.0


def _save(figure, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, format="png", bbox_inches="tight")
    return path


def _schedule_curve(name, schedule, steps_per_epoch, epochs):
    if isinstance(schedule, LearningRateSchedule):
        if epochs is None:
            raise ValueError(
                f"Schedule {name!r} is a LearningRateSchedule; pass epochs= so that its "
                "learning rate can be evaluated over the whole run."
            )
        num_steps = max(1, math.floor(epochs * steps_per_epoch + 0.5))
        return schedule_values(schedule, num_steps)
    values = np.asarray(schedule, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"Learning rates of {name!r} must be a non-empty 1-D array (one per step), "
            f"got shape {values.shape}."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"Learning rates of {name!r} contain non-finite values.")
    return values


def plot_schedules(schedules, steps_per_epoch, path, title=None, *, epochs=None, log_y=False):
    """Learning rate against epoch (fractional, step / steps_per_epoch), one panel per policy.

    `schedules` maps a label to a `LearningRateSchedule` (evaluated over `epochs` epochs) or
    to an array of per-step learning rates. Each panel runs from 0 to its own maximum, so a
    policy peaking at 0.03 and one peaking at 1.0 are both readable; `log_y` puts every
    panel on a log scale instead (useful for one_cycle's long tail). Returns the written path.
    """
    if not schedules:
        raise ValueError("schedules is empty; give at least one policy to plot.")
    if (
        isinstance(steps_per_epoch, bool)
        or not isinstance(steps_per_epoch, Integral)
        or steps_per_epoch < 1
    ):
        raise ValueError(f"steps_per_epoch must be an integer >= 1, got {steps_per_epoch!r}.")
    if epochs is not None and (not isinstance(epochs, Real) or not 0 < epochs < math.inf):
        raise ValueError(f"epochs must be a positive number, got {epochs!r}.")
    curves = {
        name: _schedule_curve(name, schedule, steps_per_epoch, epochs)
        for name, schedule in schedules.items()
    }
    if log_y:
        for name, values in curves.items():
            if np.any(values <= 0):
                raise ValueError(f"log_y needs positive learning rates; {name!r} has some <= 0.")

    figure = Figure(
        figsize=(FIGURE_WIDTH_INCHES, PANEL_HEIGHT_INCHES * len(curves) + 0.6),
        layout="constrained",
    )
    axes = figure.subplots(len(curves), 1, sharex=True, squeeze=False)[:, 0]
    longest_run = max(values.size for values in curves.values()) / steps_per_epoch
    for axis, (name, values) in zip(axes, curves.items(), strict=True):
        epoch_of_step = np.arange(values.size) / steps_per_epoch
        axis.plot(epoch_of_step, values, linewidth=1.2, color="tab:blue")
        axis.set_title(
            f"{name}   (lr {values.min():.3g} to {values.max():.3g})", loc="left", fontsize=10
        )
        axis.set_ylabel("learning rate")
        if log_y:
            axis.set_yscale("log")
        else:
            axis.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
            # From zero, so that amplitudes compare across panels as in the paper's figures.
            axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.set_xlim(0, longest_run)
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def _loss_range(losses, smoothed):
    """y limits: the smoothed loss and 95% of the batch losses, less the last rows.

    The last rows (5, or a tenth of a short sweep) are where the loss explodes; they are
    drawn but would otherwise squash everything before them into a flat line.
    """
    kept = len(smoothed) - min(5, len(smoothed) // 10)
    smoothed, losses = smoothed[:kept], losses[:kept]
    losses = losses[np.isfinite(losses)]
    bottom, top = smoothed.min(), smoothed.max()
    if losses.size:
        bottom = min(bottom, losses.min())
        top = max(top, np.percentile(losses, 95))
    margin = 0.05 * (top - bottom) if top > bottom else 0.05 * abs(top) + 1e-12
    return bottom - margin, top + margin


def plot_lr_finder(curve, suggestion, path, title=None):
    """Loss and smoothed loss against learning rate (log x), CLR bounds as vertical lines.

    `curve` is an LR finder curve (columns lr, loss, smoothed_loss, and step for marking
    the picked point); `suggestion` holds `base_lr` and `max_lr` (as `suggest` returns).
    The y axis spans the smoothed loss and the bulk of the per-batch loss, so the final
    diverging batches do not flatten the rest of the curve. Returns the written path.
    """
    missing = [name for name in ("lr", "loss", "smoothed_loss") if name not in curve.columns]
    if missing:
        raise ValueError(f"LR finder curve lacks column(s) {', '.join(missing)}.")
    for key in ("base_lr", "max_lr"):
        if key not in suggestion:
            raise ValueError(f"suggestion lacks {key!r}; pass a dict as suggest() returns.")
    lrs = curve["lr"].to_numpy(dtype=np.float64)
    losses = curve["loss"].to_numpy(dtype=np.float64)
    smoothed = curve["smoothed_loss"].to_numpy(dtype=np.float64)
    shown = np.isfinite(lrs) & (lrs > 0) & np.isfinite(smoothed)
    if not shown.any():
        raise ValueError("LR finder curve has no row with a finite lr > 0 and smoothed loss.")

    figure = Figure(figsize=(FIGURE_WIDTH_INCHES, 5.0), layout="constrained")
    axis = figure.subplots()
    axis.plot(
        lrs[shown],
        losses[shown],
        linewidth=0.8,
        alpha=0.35,
        color="tab:gray",
        label="loss (per batch)",
    )
    axis.plot(lrs[shown], smoothed[shown], linewidth=1.8, color="tab:blue", label="smoothed loss")
    axis.axvline(
        suggestion["base_lr"],
        linestyle="--",
        color="tab:green",
        label=f"base_lr = {suggestion['base_lr']:.3g}",
    )
    axis.axvline(
        suggestion["max_lr"],
        linestyle="--",
        color="tab:red",
        label=f"max_lr = {suggestion['max_lr']:.3g}",
    )
    if "step" in curve.columns and "step" in suggestion and "lr" in suggestion:
        picked = curve["step"].to_numpy() == suggestion["step"]
        if picked.any():
            axis.plot(
                suggestion["lr"],
                smoothed[picked][0],
                marker="o",
                color="tab:red",
                linestyle="none",
                label=f"picked lr = {suggestion['lr']:.3g}",
            )
    axis.set_xscale("log")
    axis.set_ylim(*_loss_range(losses[shown], smoothed[shown]))
    axis.set_xlabel("learning rate (log scale)")
    axis.set_ylabel("loss")
    axis.grid(alpha=0.3)
    # Outside the axes: wherever it sat inside, some curve would run beneath it.
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if title:
        axis.set_title(title)
    return _save(figure, path)
