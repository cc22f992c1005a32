"""Learning-rate policies as Keras schedules: constant, decay, cyclical and 1cycle.

Every schedule is a pure function of the optimizer's 0-based step counter, evaluated with
`keras.ops` in float32, so it runs inside `tf.function` and XLA and a job resumed from a
checkpoint continues exactly where it stopped (the step counter is saved with the optimizer).

The cyclical policies follow Smith 2017 ("Cyclical Learning Rates for Training Neural
Networks", arXiv 1506.01186). With `step_size` the half-cycle length in optimizer steps:

    cycle = floor(1 + step / (2 * step_size))
    x     = |step / step_size - 2 * cycle + 1|
    lr    = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale(cycle, step)

so each cycle starts at `base_lr`, peaks at `base_lr + (max_lr - base_lr) * scale` after
`step_size` steps and is back at `base_lr` after `2 * step_size` steps.

The paper states step sizes in epochs ("step size 2" = two epochs); `steps_from_epochs` is the
one place where epochs become optimizer steps, and `schedule_params` turns the workflow's flat
settings into the keyword arguments of `make_schedule`.
"""

import inspect
import math
from numbers import Integral, Real

import keras
import numpy as np
from keras import ops

from workflow_scripts.policies import POLICIES
from workflow_scripts.stage import InputError

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule


# The flat training settings that `schedule_params` reads; everything else in a settings
# dict (epochs, batch_size, optimizer, ...) belongs to other stages.
SCHEDULE_SETTINGS = (
    "learning_rate",
    "decay",
    "base_lr",
    "max_lr",
    "step_size_epochs",
    "gamma",
    "reset_cycles",
    "div_factor",
    "final_div_factor",
    "pct_start",
)

# triangular2 halves its amplitude every cycle. Beyond 64 halvings the amplitude is below
# float32's resolution of base_lr for any realistic max_lr / base_lr ratio (< 2**40), so the
# exponent is capped there: 2**-64 stays a normal float32, never 0-division or denormal trouble.
_MAX_HALVINGS = 64.0


def _require_real(name, value):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}.")
    return float(value)


def _require_positive_lr(name, value):
    value = _require_real(name, value)
    if value <= 0:
        raise InputError(f"{name} must be a positive learning rate, got {value!r}.")
    return value


def _require_integer(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _require_bounds(base_lr, max_lr):
    base_lr = _require_positive_lr("base_lr", base_lr)
    max_lr = _require_positive_lr("max_lr", max_lr)
    if base_lr >= max_lr:
        raise InputError(
            f"base_lr must be below max_lr, got base_lr={base_lr!r} and max_lr={max_lr!r}; "
            "swap them or rerun the LR finder."
        )
    return base_lr, max_lr


def _require_step_size(step_size):
    step_size = _require_real("step_size", step_size)
    if step_size < 1:
        raise InputError(
            f"step_size must be at least 1 optimizer step, got {step_size!r}; it is half a "
            "cycle in steps (steps_from_epochs converts a size given in epochs)."
        )
    return step_size


def _as_float_step(step):
    return ops.cast(step, "float32")


@keras.saving.register_keras_serializable(package="clr")
class ConstantLearningRate(LearningRateSchedule):
    """The paper's baseline: `lr(step) = learning_rate` at every step."""

    def __init__(self, learning_rate):
        self.learning_rate = _require_positive_lr("learning_rate", learning_rate)

    def __call__(self, step):
        return ops.ones_like(_as_float_step(step)) * self.learning_rate

    def get_config(self):
        return {"learning_rate": self.learning_rate}


@keras.saving.register_keras_serializable(package="clr")
class TimeDecay(LearningRateSchedule):
    """Keras 2's optimizer `decay`: `lr(step) = learning_rate / (1 + decay * step)`.

    Keras 3 optimizers dropped the `decay` argument the paper used (its Table 4); this schedule
    reproduces it. `decay = 0` is a constant learning rate.
    """

    def __init__(self, learning_rate, decay):
        self.learning_rate = _require_positive_lr("learning_rate", learning_rate)
        self.decay = _require_real("decay", decay)
        if self.decay < 0:
            raise InputError(f"decay must be >= 0, got {decay!r}.")

    def __call__(self, step):
        return self.learning_rate / (1.0 + self.decay * _as_float_step(step))

    def get_config(self):
        return {"learning_rate": self.learning_rate, "decay": self.decay}


class CyclicalLearningRate(LearningRateSchedule):
    """Smith's triangular wave between `base_lr` and `max_lr`, amplitude times `scale`.

    `lr = base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale(cycle, step)` with
    `cycle = floor(1 + step / (2 * step_size))` and `x = |step / step_size - 2 * cycle + 1|`.
    Subclasses define `scale`; `step_size` is half a cycle in optimizer steps.
    """

    def __init__(self, base_lr, max_lr, step_size):
        self.base_lr, self.max_lr = _require_bounds(base_lr, max_lr)
        self.step_size = _require_step_size(step_size)

    def scale(self, cycle, step):
        raise NotImplementedError(f"{type(self).__name__} must define scale(cycle, step).")

    def __call__(self, step):
        step = _as_float_step(step)
        cycle = ops.floor(1.0 + step / (2.0 * self.step_size))
        x = ops.abs(step / self.step_size - 2.0 * cycle + 1.0)
        wave = ops.maximum(0.0, 1.0 - x)
        amplitude = self.max_lr - self.base_lr
        return self.base_lr + amplitude * wave * self.scale(cycle, step)

    def get_config(self):
        return {"base_lr": self.base_lr, "max_lr": self.max_lr, "step_size": self.step_size}


@keras.saving.register_keras_serializable(package="clr")
class Triangular(CyclicalLearningRate):
    """Smith's `triangular`: every cycle peaks at `max_lr` (scale = 1)."""

    def scale(self, cycle, step):
        return ops.ones_like(cycle)


@keras.saving.register_keras_serializable(package="clr")
class Triangular2(CyclicalLearningRate):
    """Smith's `triangular2`: the amplitude halves each cycle, scale = 1 / 2**(cycle - 1).

    Computed as 2**-min(cycle - 1, 64): past 64 halvings the amplitude no longer changes
    a float32 learning rate, and the cap keeps the power finite after any number of cycles.
    """

    def scale(self, cycle, step):
        return ops.power(2.0, -ops.minimum(cycle - 1.0, _MAX_HALVINGS))


@keras.saving.register_keras_serializable(package="clr")
class ExpRange(CyclicalLearningRate):
    """Smith's `exp_range`: the amplitude shrinks every step, scale = gamma**step.

    Evaluated as exp(step * ln(gamma)) with ln(gamma) taken in float64 once, so the
    float32 rounding of `gamma` is not raised to the power `step`; the product underflows
    to 0 (the wave settles at `base_lr`), never to NaN. `gamma` lies in (0, 1].
    """

    def __init__(self, base_lr, max_lr, step_size, gamma):
        super().__init__(base_lr, max_lr, step_size)
        self.gamma = _require_real("gamma", gamma)
        if not 0 < self.gamma <= 1:
            raise InputError(
                f"gamma must lie in (0, 1], got {gamma!r}; the amplitude is scaled by "
                "gamma**step (Smith's default is 0.99994)."
            )
        self._log_gamma = math.log(self.gamma)

    def scale(self, cycle, step):
        return ops.exp(step * self._log_gamma)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="clr")
class ModifiedTriangular2(CyclicalLearningRate):
    """The paper's `modified_triangular2`: triangular2 whose halving restarts.

    scale = 1 / 2**((cycle - 1) mod reset_cycles): with the default `reset_cycles = 3` the
    cycle peaks are base + A, base + A/2, base + A/4, then base + A again (A = max_lr -
    base_lr). For the paper's Pneumothorax bounds (0.0075, 0.03) the peaks are 0.03, 0.01875,
    0.013125, 0.03, ...
    """

    def __init__(self, base_lr, max_lr, step_size, reset_cycles=3):
        super().__init__(base_lr, max_lr, step_size)
        self.reset_cycles = _require_integer("reset_cycles", reset_cycles, minimum=1)

    def scale(self, cycle, step):
        cycle_in_block = ops.mod(cycle - 1.0, float(self.reset_cycles))
        return ops.power(2.0, -ops.minimum(cycle_in_block, _MAX_HALVINGS))

    def get_config(self):
        return {**super().get_config(), "reset_cycles": self.reset_cycles}


@keras.saving.register_keras_serializable(package="clr")
class OneCycle(LearningRateSchedule):
    """Smith and Topin's 1cycle (super-convergence), as PyTorch's `OneCycleLR` (cosine).

    With `initial = max_lr / div_factor`, `final = initial / final_div_factor`,
    `peak = pct_start * total_steps - 1` and
    `anneal(start, end, p) = end + (start - end) / 2 * (1 + cos(pi * p))`:

        lr = anneal(initial, max_lr, step / peak)                               step <= peak
        lr = anneal(max_lr, final, (step - peak) / (total_steps - 1 - peak))    otherwise

    The learning rate reaches `final` at step `total_steps - 1` and stays there. Unlike
    PyTorch's scheduler it does not cycle the optimizer's momentum.
    """

    def __init__(self, max_lr, total_steps, div_factor=25.0, final_div_factor=1e4, pct_start=0.3):
        self.max_lr = _require_positive_lr("max_lr", max_lr)
        self.total_steps = _require_integer("total_steps", total_steps, minimum=2)
        self.div_factor = _require_real("div_factor", div_factor)
        self.final_div_factor = _require_real("final_div_factor", final_div_factor)
        self.pct_start = _require_real("pct_start", pct_start)
        for name, value in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            if value < 1:
                raise InputError(f"{name} must be >= 1, got {value!r}.")
        if not 0 < self.pct_start < 1:
            raise InputError(f"pct_start must lie in (0, 1), got {pct_start!r}.")
        self._peak_step = self.pct_start * self.total_steps - 1.0
        if self._peak_step <= 0:
            raise InputError(
                f"pct_start * total_steps must exceed 1 step of warm-up, got pct_start="
                f"{pct_start!r} with total_steps={total_steps!r}; raise either."
            )

    @property
    def initial_lr(self):
        return self.max_lr / self.div_factor

    @property
    def final_lr(self):
        return self.initial_lr / self.final_div_factor

    def __call__(self, step):
        step = _as_float_step(step)
        warmup_fraction = ops.clip(step / self._peak_step, 0.0, 1.0)
        anneal_length = self.total_steps - 1.0 - self._peak_step
        anneal_fraction = ops.clip((step - self._peak_step) / anneal_length, 0.0, 1.0)
        warming = _cosine_anneal(self.initial_lr, self.max_lr, warmup_fraction)
        annealing = _cosine_anneal(self.max_lr, self.final_lr, anneal_fraction)
        return ops.where(step <= self._peak_step, warming, annealing)

    def get_config(self):
        return {
            "max_lr": self.max_lr,
            "total_steps": self.total_steps,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "pct_start": self.pct_start,
        }


def _cosine_anneal(start, end, fraction):
    return end + (start - end) / 2.0 * (1.0 + ops.cos(math.pi * fraction))


POLICY_CLASSES = {
    "constant": ConstantLearningRate,
    "time_decay": TimeDecay,
    "triangular": Triangular,
    "triangular2": Triangular2,
    "exp_range": ExpRange,
    "modified_triangular2": ModifiedTriangular2,
    "one_cycle": OneCycle,
}


def _require_policy(policy):
    if policy not in POLICY_CLASSES:
        raise InputError(f"Unknown policy {policy!r}; valid policies: {', '.join(POLICIES)}.")
    return POLICY_CLASSES[policy]


def policy_parameters(policy):
    """(required, optional) parameter names that `make_schedule(policy, ...)` accepts."""
    signature = inspect.signature(_require_policy(policy).__init__)
    parameters = [p for p in signature.parameters.values() if p.name != "self"]
    required = tuple(p.name for p in parameters if p.default is inspect.Parameter.empty)
    optional = tuple(p.name for p in parameters if p.default is not inspect.Parameter.empty)
    return required, optional


def make_schedule(policy, **params):
    """The `LearningRateSchedule` of `policy` built from exactly the parameters it takes.

    A parameter the policy does not take is an error rather than ignored, so a misspelt or
    misplaced setting cannot silently leave a default in force.
    """
    schedule_class = _require_policy(policy)
    required, optional = policy_parameters(policy)
    unknown = sorted(set(params) - set(required) - set(optional))
    if unknown:
        raise InputError(
            f"Policy {policy!r} does not take {', '.join(unknown)}; it takes "
            f"{', '.join(required + optional)}."
        )
    missing = [name for name in required if name not in params]
    if missing:
        raise InputError(f"Policy {policy!r} needs {', '.join(missing)}; none was given.")
    return schedule_class(**params)


def steps_from_epochs(step_size_epochs, steps_per_epoch):
    """Optimizer steps in `step_size_epochs` epochs: round(step_size_epochs * steps_per_epoch).

    Halves round up and the result is at least 1, so fractional sizes (0.5 epoch) work on
    any dataset. The paper's Pneumothorax run: 2 epochs x 541 batches = 1082 steps.
    """
    step_size_epochs = _require_real("step_size_epochs", step_size_epochs)
    if step_size_epochs <= 0:
        raise InputError(f"step_size_epochs must be positive, got {step_size_epochs!r}.")
    steps_per_epoch = _require_integer("steps_per_epoch", steps_per_epoch, minimum=1)
    return max(1, math.floor(step_size_epochs * steps_per_epoch + 0.5))


def schedule_params(policy, settings, steps_per_epoch, total_epochs):
    """The keyword arguments of `make_schedule(policy, ...)` picked from flat `settings`.

    `settings` is the workflow's training block: keys in `SCHEDULE_SETTINGS` are read,
    others (epochs, batch_size, optimizer, ...) are left to other stages, and a value of
    None counts as absent. `step_size_epochs` becomes `step_size` through
    `steps_from_epochs`; one_cycle gets `total_steps = steps_per_epoch * total_epochs`.
    A setting the policy needs but `settings` lacks is an error naming that key.
    """
    required, optional = policy_parameters(policy)
    steps_per_epoch = _require_integer("steps_per_epoch", steps_per_epoch, minimum=1)
    total_epochs = _require_integer("total_epochs", total_epochs, minimum=1)
    params = {}
    for name in required + optional:
        if name == "step_size":
            value = settings.get("step_size_epochs")
            if value is not None:
                value = steps_from_epochs(value, steps_per_epoch)
            setting_name = "step_size_epochs"
        elif name == "total_steps":
            value = steps_per_epoch * total_epochs
            setting_name = name
        else:
            value = settings.get(name)
            setting_name = name
        if value is not None:
            params[name] = value
        elif name in required:
            hint = (
                " (null means the LR finder's bound; fill it in from its result first)"
                if name in ("base_lr", "max_lr")
                else ""
            )
            raise InputError(f"Policy {policy!r} needs setting {setting_name!r}, got None{hint}.")
    return params


def schedule_values(schedule, num_steps):
    """The learning rate at steps 0 .. num_steps - 1, one vectorized evaluation.

    A float64 array holding the float32 values the optimizer sees.
    """
    num_steps = _require_integer("num_steps", num_steps, minimum=1)
    values = schedule(ops.arange(num_steps, dtype="int64"))
    return np.asarray(ops.convert_to_numpy(values), dtype=np.float64).reshape(num_steps)
