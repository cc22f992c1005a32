"""The paper's learning-rate policies: its constant and decaying baselines, Smith's cyclical
policies, its own modified triangular2, and 1cycle. One class each (see `policy_base`).

The cyclical policies follow Smith 2017 ("Cyclical Learning Rates for Training Neural
Networks", arXiv 1506.01186). With `step_size` the half-cycle length in optimizer steps:

    cycle = floor(1 + step / (2 * step_size))
    x     = |step / step_size - 2 * cycle + 1|
    lr    = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale(cycle, step)

so each cycle starts at `base_lr`, peaks at `base_lr + (max_lr - base_lr) * scale` after
`step_size` steps and is back at `base_lr` after `2 * step_size` steps.

The paper states step sizes in epochs ("step size 2" = two epochs); `steps_from_epochs` is the
one place where epochs become optimizer steps. Each class says in `arguments` which training
settings (config `train`) it reads and how, as timm's scheduler factory names its arguments:
renaming a config key is then an error naming the key, never a silently different schedule.
"""

import math
from abc import abstractmethod
from fractions import Fraction

import numpy as np

from workflow_scripts.policy_base import (
    Policy,
    cosine_anneal,
    optional_settings,
    required_setting,
    steps_from_epochs,
)
from workflow_scripts.stage import InputError

# triangular2 halves its amplitude every cycle. Beyond 64 halvings the amplitude is below
# float32's resolution of base_lr for any realistic max_lr / base_lr ratio (< 2**40), so the
# exponent is capped there: 2**-64 stays a normal float32, never 0-division or denormal trouble.
MAX_HALVINGS = 64.0


class ConstantLearningRate(Policy):
    """The paper's baseline: `lr(step) = learning_rate` at every step."""

    name = "constant"

    def __init__(self, learning_rate):
        self.learning_rate = learning_rate

    def __call__(self, step, ops=np):
        return ops.ones_like(step) * self.learning_rate

    @classmethod
    def arguments(cls, settings, length):
        return {"learning_rate": required_setting(cls.name, settings, "learning_rate")}


class TimeDecay(Policy):
    """Keras 2's optimizer `decay`: `lr(step) = learning_rate / (1 + decay * step)`.

    Keras 3 optimizers dropped the `decay` argument the paper used (its Table 4); this policy
    reproduces it. `decay = 0` is a constant learning rate.
    """

    name = "time_decay"

    def __init__(self, learning_rate, decay):
        self.learning_rate = learning_rate
        self.decay = decay

    def __call__(self, step, ops=np):
        return self.learning_rate / (1.0 + self.decay * step)

    @classmethod
    def arguments(cls, settings, length):
        return {"learning_rate": required_setting(cls.name, settings, "learning_rate"),
                "decay": required_setting(cls.name, settings, "decay")}

    @classmethod
    def same_schedule_as(cls, settings):
        return "constant" if settings["decay"] == 0 else None


class CyclicalLearningRate(Policy):
    """Smith's triangular wave between `base_lr` and `max_lr`, amplitude times `scale`.

    `lr = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale(cycle, step)` with
    `cycle = floor(1 + step / (2 * step_size))` and `x = |step / step_size - 2 * cycle + 1|`.
    Subclasses define `scale`; `step_size` is half a cycle in optimizer steps.
    """

    bounds = ("base_lr", "max_lr")
    cycles_momentum = True

    def __init__(self, base_lr, max_lr, step_size):
        # Two settings, each valid alone, can still cross; the schema checks keys one by one.
        if base_lr >= max_lr:
            raise InputError(
                f"base_lr must be below max_lr, got base_lr={base_lr!r} and max_lr={max_lr!r}; "
                "swap them or rerun the LR finder.")
        self.base_lr, self.max_lr, self.step_size = base_lr, max_lr, step_size

    @abstractmethod
    def scale(self, cycle, step, ops):
        """The amplitude's factor in `cycle` (counted from 1) at `step`."""

    def height(self, step, ops=np):
        """`max(0, 1 - x) * scale`: 0 at base_lr, 1 at max_lr. PyTorch's `CyclicLR` moves
        the momentum by the same fraction the other way."""
        cycle = ops.floor(1.0 + step / (2.0 * self.step_size))
        x = ops.abs(step / self.step_size - 2.0 * cycle + 1.0)
        return ops.maximum(0.0, 1.0 - x) * self.scale(cycle, step, ops)

    def __call__(self, step, ops=np):
        return self.base_lr + (self.max_lr - self.base_lr) * self.height(step, ops)

    @classmethod
    def arguments(cls, settings, length):
        step_size_epochs = required_setting(cls.name, settings, "step_size_epochs")
        return {"base_lr": required_setting(cls.name, settings, "base_lr"),
                "max_lr": required_setting(cls.name, settings, "max_lr"),
                "step_size": steps_from_epochs(step_size_epochs, length.steps_per_epoch)}


class Triangular(CyclicalLearningRate):
    """Smith's `triangular`: every cycle peaks at `max_lr` (scale = 1)."""

    name = "triangular"

    def scale(self, cycle, step, ops):
        return ops.ones_like(cycle)


class Triangular2(CyclicalLearningRate):
    """Smith's `triangular2`: the amplitude halves each cycle, scale = 1 / 2**(cycle - 1).

    Computed as 2**-min(cycle - 1, 64): past 64 halvings the amplitude no longer changes
    a float32 learning rate, and the cap keeps the power finite after any number of cycles.
    """

    name = "triangular2"

    def scale(self, cycle, step, ops):
        return ops.power(2.0, -ops.minimum(cycle - 1.0, MAX_HALVINGS))


class ExpRange(CyclicalLearningRate):
    """Smith's `exp_range`: the amplitude shrinks every step, scale = gamma**step.

    Evaluated as exp(step * ln(gamma)) with ln(gamma) taken in float64 once, so the
    float32 rounding of `gamma` is not raised to the power `step`; the product underflows
    to 0 (the wave settles at `base_lr`), never to NaN. `gamma` lies in (0, 1]; gamma = 1
    is triangular.
    """

    name = "exp_range"

    def __init__(self, base_lr, max_lr, step_size, gamma):
        super().__init__(base_lr, max_lr, step_size)
        self.gamma = gamma
        self.log_gamma = math.log(gamma)

    def scale(self, cycle, step, ops):
        return ops.exp(step * self.log_gamma)

    @classmethod
    def arguments(cls, settings, length):
        return {**super().arguments(settings, length),
                "gamma": required_setting(cls.name, settings, "gamma")}

    @classmethod
    def same_schedule_as(cls, settings):
        return "triangular" if settings["gamma"] == 1 else None


class ModifiedTriangular2(CyclicalLearningRate):
    """The paper's `modified_triangular2`: triangular2 whose halving restarts.

    scale = 1 / 2**((cycle - 1) mod reset_cycles): with the default `reset_cycles = 3` the
    cycle peaks are base + A, base + A/2, base + A/4, then base + A again (A = max_lr -
    base_lr). For the paper's Pneumothorax bounds (0.0075, 0.03) the peaks are 0.03, 0.01875,
    0.013125, 0.03, ... A run that ends before its halving restarts is triangular2.
    """

    name = "modified_triangular2"

    def __init__(self, base_lr, max_lr, step_size, reset_cycles=3):
        super().__init__(base_lr, max_lr, step_size)
        self.reset_cycles = reset_cycles

    def scale(self, cycle, step, ops):
        cycle_in_block = ops.mod(cycle - 1.0, float(self.reset_cycles))
        return ops.power(2.0, -ops.minimum(cycle_in_block, MAX_HALVINGS))

    @classmethod
    def arguments(cls, settings, length):
        return {**super().arguments(settings, length),
                **optional_settings(settings, "reset_cycles")}

    @classmethod
    def same_schedule_as(cls, settings):
        if halving_never_restarts(settings["epochs"], settings["step_size_epochs"],
                                  settings["reset_cycles"]):
            return "triangular2"
        return None


class OneCycle(Policy):
    """Smith and Topin's 1cycle (super-convergence), as PyTorch's `OneCycleLR` (cosine).

    With `initial = max_lr / div_factor`, `final = initial / final_div_factor`,
    `peak = pct_start * total_steps - 1` and
    `anneal(start, end, p) = end + (start - end) / 2 * (1 + cos(pi * p))`:

        lr = anneal(initial, max_lr, step / peak)                               step <= peak
        lr = anneal(max_lr, final, (step - peak) / (total_steps - 1 - peak))    otherwise

    The learning rate reaches `final` at step `total_steps - 1` and stays there. With
    `three_phase` (Smith's original 1cycle) the rate comes back down to `initial` by step
    `2 * peak` and anneals from there to `final`; the momentum, when cycled, falls while the
    rate rises, rises while it falls, and stays at its maximum in the third phase.
    """

    name = "one_cycle"
    bounds = ("max_lr",)
    cycles_momentum = True

    def __init__(self, max_lr, total_steps, div_factor=25.0, final_div_factor=1e4, pct_start=0.3,
                 three_phase=False):
        self.max_lr, self.total_steps = max_lr, total_steps
        self.div_factor, self.final_div_factor = div_factor, final_div_factor
        self.pct_start, self.three_phase = pct_start, three_phase
        # The run's length decides whether there is a warm-up at all.
        self.peak_step = self.pct_start * self.total_steps - 1.0
        if self.peak_step <= 0:
            raise InputError(
                f"pct_start * total_steps must exceed 1 step of warm-up, got pct_start="
                f"{pct_start!r} with total_steps={total_steps!r}; raise either.")
        # PyTorch's phase ends: the second phase mirrors the first.
        self.descent_end = 2.0 * self.pct_start * self.total_steps - 2.0 if three_phase \
            else self.peak_step
        if three_phase and not self.peak_step < self.descent_end < self.total_steps - 1.0:
            raise InputError(f"three_phase needs pct_start below 0.5 of a run of more than a few "
                             f"steps, got pct_start={pct_start!r} with total_steps="
                             f"{total_steps!r}.")

    @property
    def initial_lr(self):
        return self.max_lr / self.div_factor

    @property
    def final_lr(self):
        return self.initial_lr / self.final_div_factor

    def phase_fractions(self, step, ops):
        """How far `step` is through the warm-up, the descent (three_phase) and the anneal."""
        def through(start, end):
            return ops.clip((step - start) / (end - start), 0.0, 1.0)
        warmup = through(0.0, self.peak_step)
        descent = through(self.peak_step, self.descent_end) if self.three_phase else warmup
        return warmup, descent, through(self.descent_end, self.total_steps - 1.0)

    def __call__(self, step, ops=np):
        warmup, descent, anneal = self.phase_fractions(step, ops)
        warming = cosine_anneal(self.initial_lr, self.max_lr, warmup, ops)
        if self.three_phase:
            descending = cosine_anneal(self.max_lr, self.initial_lr, descent, ops)
            annealing = cosine_anneal(self.initial_lr, self.final_lr, anneal, ops)
            return ops.where(step <= self.peak_step, warming,
                             ops.where(step <= self.descent_end, descending, annealing))
        annealing = cosine_anneal(self.max_lr, self.final_lr, anneal, ops)
        return ops.where(step <= self.peak_step, warming, annealing)

    def height(self, step, ops=np):
        warmup, descent, anneal = self.phase_fractions(step, ops)
        rising = cosine_anneal(0.0, 1.0, warmup, ops)
        falling = cosine_anneal(1.0, 0.0, descent if self.three_phase else anneal, ops)
        if self.three_phase:
            return ops.where(step <= self.peak_step, rising,
                             ops.where(step <= self.descent_end, falling, 0.0 * step))
        return ops.where(step <= self.peak_step, rising, falling)

    @classmethod
    def arguments(cls, settings, length):
        # The annealing ends with the run, so its length comes from the run, not a setting.
        return {"max_lr": required_setting(cls.name, settings, "max_lr"),
                "total_steps": length.total_steps,
                **optional_settings(settings, "div_factor", "final_div_factor", "pct_start",
                                    "three_phase")}


def cycles_started(epochs, step_size_epochs, steps_per_epoch):
    """The CLR cycle of a run's last optimizer step (cycles are counted from 1)."""
    step_size = steps_from_epochs(step_size_epochs, steps_per_epoch)
    return math.floor(1 + (epochs * steps_per_epoch - 1) / (2 * step_size))


def halving_never_restarts(epochs, step_size_epochs, reset_cycles):
    """Whether a run of `epochs` epochs ends within its first `reset_cycles` cycles whatever
    its number S of steps per epoch, so that modified_triangular2 never restarts its halving
    and is triangular2 at every step.

    With m = 2 x step_size_epochs x reset_cycles - epochs: for m < 0 a long enough epoch
    starts another cycle. For m > 0 the rounded step size is at least step_size_epochs x S -
    1/2, which keeps every S above (reset_cycles - 1) / m within the cycles; the S up to that
    bound are counted. For m = 0 it depends on how step_size_epochs x S rounds, which repeats
    with the denominator of step_size_epochs as a fraction; one such period is counted.
    """
    exact = Fraction(step_size_epochs).limit_denominator(1000)
    margin = 2 * exact * reset_cycles - epochs
    if margin < 0:
        return False
    bound = math.ceil((reset_cycles - 1) / margin) + 1 if margin > 0 else exact.denominator
    return all(cycles_started(epochs, step_size_epochs, steps) <= reset_cycles
               for steps in range(1, bound + 1))


