"""CLR bounds read off an LR range test curve, and checked before any run trains with them.

The curve has one row per batch of the sweep: its learning rate `lr`, the logged `loss`, and
that loss split into the `data_loss` (the cross-entropy the model is trained to lower) and the
regularization `penalty` (the rest). The bounds are read off the data loss only: with the
paper's head at initialization the penalty is over 90% of the loss and shrinks fastest at
high learning rates, so the total loss falls to the very end of the sweep whatever the data
loss does.

Smoothing without lag. The per-batch data loss is averaged over a centred window of
`smoothing_decades` of learning rate (the window shrinks to the rows that exist at the
sweep's ends). A centred window moves no minimum: on a loss that is a parabola in log LR the
smoothed minimum is the true one, where a trailing exponential average (beta 0.98 over a
243-step sweep) lags by 49 steps, 1.4 decades of LR.

Rules (each picks one learning rate, which becomes `max_lr`; `base_lr` is a quarter of it,
as in the paper):

- `min_loss` (the paper's rule): the lowest smoothed data loss, the edge of divergence;
- `steepest`: where the smoothed data loss falls fastest against log LR;
- `valley` (fastai's default, `fastai.callback.schedule.valley`): on the smoothed data loss,
  the longest strictly falling subsequence of length L ending at row e is read as the
  stretch from s = e - L to e, and the pick is row s + int((e - s) / 3) + int((e - s) / 6),
  about half way down it (see `valley_index`).

Checks. A pick is usable only if (1) it lies away from both ends of the sweep (not in the
first or last `edge_fraction` of its rows); (2) the smoothed data loss falls by at least
`min_drop` (a fraction of its start) from the start to its minimum; (3) that fall is at least
`min_signal_to_noise` standard errors, the noise measured from the per-batch differences (on
a flat curve noise alone puts the smoothed minimum a median 1.6 and rarely over 4 standard
errors below the start); (4) the sweep diverged (`require_divergence`): it stopped on
divergence, or the smoothed data loss rises after its minimum by as much as the fall must be,
so that it saw where the learning rate becomes too high; (5) for a classifier, the smoothed
data loss falls below the loss of always predicting the training split's share of positives,
so that the model learned something: a fall that only undoes the miscalibration of a freshly
initialized model says nothing about the learning rates that train it. (2) to (5) concern the
curve, (1) the pick. `choose_bounds` takes the configured rule, else the fallback rule if its
pick passes; when neither passes, `unusable_reasons` says why, and the LR-finder job stops
with them where a run needs its bounds.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workflow_scripts.stage import InputError

RULES = ("min_loss", "steepest", "valley")

# The paper (after Smith 2017): the CLR base learning rate is a quarter of its maximum.
BASE_LR_FRACTION = 0.25


@dataclass(frozen=True)
class CheckSettings:
    """The thresholds of the checks (config `lr_finder`); see the module docstring."""

    smoothing_decades: float = 0.5
    edge_fraction: float = 0.05
    min_drop: float = 0.05
    min_signal_to_noise: float = 4.0
    require_divergence: bool = True

    @classmethod
    def from_config(cls, finder):
        return cls(**{name: finder[name] for name in cls.__dataclass_fields__})


@dataclass
class Pick:
    """One rule's learning rate on the curve, and what the checks found wrong with it."""

    rule: str
    lr: float
    step: int
    problems: list = field(default_factory=list)

    @property
    def passed(self):
        return not self.problems

    @property
    def max_lr(self):
        return self.lr

    @property
    def base_lr(self):
        return self.lr * BASE_LR_FRACTION

    def as_dict(self):
        return {"max_lr": self.max_lr, "base_lr": self.base_lr, "lr": self.lr,
                "step": self.step, "passed": self.passed, "problems": list(self.problems)}


@dataclass
class BoundsChoice:
    """The bounds a target's cyclical runs take, the rule that gave them, and why."""

    chosen: Pick
    configured_rule: str
    picks: dict  # rule -> Pick, every rule in RULES

    @property
    def fallback_used(self):
        return self.chosen.rule != self.configured_rule

    @property
    def verdict(self):
        """One line for the log, Table 8 and the figure, e.g. 'min_loss failed (...);
        valley passed and was used'."""
        configured = self.picks[self.configured_rule]
        if configured.passed:
            return f"{configured.rule} passed every check"
        return (f"{configured.rule} failed ({'; '.join(configured.problems)}); fallback "
                f"{self.chosen.rule} passed and was used")

    def as_dict(self):
        return {"rule": self.chosen.rule, "configured_rule": self.configured_rule,
                "fallback_used": self.fallback_used, "verdict": self.verdict,
                "max_lr": self.chosen.max_lr, "base_lr": self.chosen.base_lr,
                "lr": self.chosen.lr, "step": self.chosen.step,
                "suggestions": {rule: pick.as_dict() for rule, pick in self.picks.items()}}


def usable_rows(curve):
    """The curve's rows with a finite, positive lr and a finite data loss (the sweep may
    end on a batch whose loss overflowed); InputError with fewer than 3."""
    lrs = curve["lr"].to_numpy(dtype=np.float64)
    losses = curve["data_loss"].to_numpy(dtype=np.float64)
    usable = curve[np.isfinite(lrs) & (lrs > 0) & np.isfinite(losses)]
    if len(usable) < 3:
        raise InputError(f"LR finder curve has {len(usable)} usable row(s) (finite lr > 0 and "
                         "finite data loss); at least 3 are needed. Sweep more steps or lower "
                         "lr_finder.min_lr.")
    return usable


def window_half_width(lrs, decades):
    """Rows on each side of a centred window `decades` of learning rate wide (at least 1)."""
    span = math.log10(lrs[-1] / lrs[0]) if lrs[-1] > lrs[0] else 0.0
    rows_per_decade = (len(lrs) - 1) / span if span > 0 else 0.0
    return max(1, round(decades * rows_per_decade / 2))


def centred_data_loss(usable, decades):
    """The usable rows' data loss averaged over a centred window `decades` of learning rate
    wide (`window_half_width` rows on each side), truncated at the ends."""
    half = window_half_width(usable["lr"].to_numpy(np.float64), decades)
    return (pd.Series(usable["data_loss"].to_numpy(np.float64))
            .rolling(2 * half + 1, center=True, min_periods=1).mean().to_numpy())


def smoothed_data_loss(curve, decades):
    """The centred average of the usable rows' data loss (NaN on the other rows)."""
    usable = usable_rows(curve)
    smoothed = pd.Series(np.nan, index=curve.index)
    smoothed[usable.index] = centred_data_loss(usable, decades)
    return smoothed.to_numpy()


def pick(curve, rule, settings=CheckSettings()):
    """The row that `rule` picks: (usable rows, their smoothed data loss, index into them)."""
    usable = usable_rows(curve)
    smoothed = centred_data_loss(usable, settings.smoothing_decades)
    if rule == "min_loss":
        index = int(np.argmin(smoothed))
    elif rule == "steepest":
        index = steepest_fall(smoothed, np.log(usable["lr"].to_numpy(np.float64)))
    else:
        index = valley_index(smoothed)
    return usable, smoothed, index


def steepest_fall(values, log_lrs):
    """Index of the most negative slope d(values)/d(log_lrs), over a window of +-w rows,
    w a twentieth of the curve (at least 1)."""
    half_window = max(1, len(values) // 20)
    if len(values) <= 2 * half_window:
        return len(values) // 2
    centres = np.arange(half_window, len(values) - half_window)
    rise = values[centres + half_window] - values[centres - half_window]
    run = log_lrs[centres + half_window] - log_lrs[centres - half_window]
    return int(centres[np.argmin(rise / run)])


def valley_index(values):
    """fastai's `valley` suggestion (fastai/callback/schedule.py), as an index into `values`.

    fastai scans i = 1 .. n-1 and, for each i, j = 0 .. i-1: `lengths[i]` grows to
    lengths[j] + 1 wherever values[j] > values[i] (the longest strictly falling subsequence
    ending at i), and the moment `lengths[i]` first exceeds the longest found so far, at
    `end`, it sets end = i and start = i - lengths[i] (the length at that moment, which may
    grow further within the scan). The pick is start + int((end - start) / 3) +
    int((end - start) / 6). Vectorized here per i; the first j that lifts `lengths[i]` above
    the longest is the first falling-to-i j whose own length reaches it. fastai's start can
    be -1 (a stretch falling from row 0); the pick is then clipped to row 0, where fastai's
    Python indexing would wrap to the last row.
    """
    values = np.asarray(values, dtype=np.float64)
    lengths = np.ones(len(values), dtype=np.int64)
    start = end = 0
    for i in range(1, len(values)):
        falling_to_i = values[:i] > values[i]
        if not falling_to_i.any():
            continue
        lengths[i] = lengths[:i][falling_to_i].max() + 1
        if lengths[i] > lengths[end]:
            first = int(np.flatnonzero(falling_to_i & (lengths[:i] >= lengths[end]))[0])
            start, end = i - (lengths[first] + 1), i
    sections = (end - start) / 3
    return max(0, start + int(sections) + int(sections / 2))


def curve_problems(usable, smoothed, stopped_early, settings, chance_loss=None):
    """What makes the whole curve unreadable, whatever the rule (checks 2 to 5)."""
    problems = []
    raw = usable["data_loss"].to_numpy(np.float64)
    half = window_half_width(usable["lr"].to_numpy(np.float64), settings.smoothing_decades)
    # The start is the first full window's mean: the truncated windows before it average
    # fewer batches and would make noise look like a fall.
    start, lowest = float(smoothed[min(half, len(raw) - 1)]), float(smoothed.min())
    drop = start - lowest
    # Per-batch noise from successive differences (robust to the trend and to outliers);
    # a fall or rise is a difference of two window means, each with error noise / sqrt(n).
    noise = 1.4826 * np.median(np.abs(np.diff(raw))) / math.sqrt(2)
    standard_error = math.sqrt(2) * noise / math.sqrt(min(2 * half + 1, len(raw)))
    least = max(settings.min_drop * abs(start), settings.min_signal_to_noise * standard_error)
    if drop < settings.min_drop * abs(start):
        problems.append(f"the smoothed data loss falls only {drop / abs(start):.1%} from its "
                        f"start ({start:.4g} to {lowest:.4g}; at least "
                        f"{settings.min_drop:.0%} needed)")
    if drop < settings.min_signal_to_noise * standard_error:
        problems.append(f"the curve is too noisy to read: its fall of {drop:.3g} is under "
                        f"{settings.min_signal_to_noise:g} standard errors ({standard_error:.3g}"
                        f"; per-batch noise {noise:.3g})")
    if chance_loss is not None and lowest >= chance_loss:
        problems.append(f"the model learned nothing during the sweep: the smoothed data loss "
                        f"never fell below {chance_loss:.3g}, the loss of always predicting "
                        "the training split's share of positives")
    rise = float(smoothed[int(np.argmin(smoothed)):].max()) - lowest
    if settings.require_divergence and not stopped_early and rise < least:
        problems.append(f"the sweep never diverged: after its minimum the smoothed data loss "
                        f"rises by {rise:.3g} where a rise of {least:.3g} (as much as the fall "
                        "needs) would show the learning rates that are too high")
    return problems


def pick_problems(index, count, settings):
    """Check 1: the pick must not lie at either end of the sweep."""
    edge = max(1, math.ceil(settings.edge_fraction * count))
    if index < edge:
        return [f"the pick lies at the start of the sweep (row {index + 1} of {count}, within "
                f"the first {settings.edge_fraction:.0%})"]
    if index >= count - edge:
        return [f"the pick lies at the end of the sweep (row {index + 1} of {count}, within "
                f"the last {settings.edge_fraction:.0%})"]
    return []


def checked_picks(curve, stopped_early, settings=CheckSettings(), chance_loss=None):
    """Every rule's Pick with its problems (an empty list: it passed). `stopped_early`:
    the sweep stopped on divergence before its last step; `chance_loss`: the data loss of a
    model that has learned nothing (None: not checked)."""
    picks = {}
    for rule in RULES:
        usable, smoothed, index = pick(curve, rule, settings)
        problems = curve_problems(usable, smoothed, stopped_early, settings, chance_loss)
        problems = pick_problems(index, len(usable), settings) + problems
        picks[rule] = Pick(rule, float(usable["lr"].iat[index]),
                           int(usable["step"].iat[index]), problems)
    return picks


def tried_rules(rule, fallback):
    """The configured rule, then the fallback unless it is 'none' or the same rule."""
    return [rule] if fallback == "none" else list(dict.fromkeys([rule, fallback]))


def choose_bounds(picks, rule, fallback):
    """The BoundsChoice of `rule`, or of `fallback` when `rule`'s pick fails a check; None
    when neither passes (`unusable_reasons` says why)."""
    for candidate in tried_rules(rule, fallback):
        if picks[candidate].passed:
            return BoundsChoice(picks[candidate], rule, picks)
    return None


def unusable_reasons(picks, rule, fallback):
    """Why no tried rule gave usable bounds, one clause per rule."""
    return "; ".join(f"rule {name} picked lr {picks[name].lr:.3g}, but "
                     f"{', and '.join(picks[name].problems)}"
                     for name in tried_rules(rule, fallback))
