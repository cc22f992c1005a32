"""The learning-rate policies of later practice, next to the paper's: cosine decay with a
linear warm-up, cosine with warm restarts (SGDR), and warmup-stable-decay (WSD). One class
each (see `policy_base`).

Each peaks at `max_lr` (the LR range test's bound when unset, as for 1cycle) and bottoms out
at `min_lr = min_lr_fraction * max_lr`. Their references, checked step by step in the tests:
Keras' `CosineDecay` (with warm-up) and timm's `CosineLRScheduler` for `cosine`; Keras'
`CosineDecayRestarts`, PyTorch's `CosineAnnealingWarmRestarts` and timm for `sgdr`;
transformers' `get_wsd_schedule` for `wsd`.
"""

import math

import numpy as np

from workflow_scripts.policy_base import (
    Policy,
    cosine_anneal,
    optional_settings,
    required_setting,
    steps_from_epochs,
)
from workflow_scripts.stage import InputError


def warmup_steps(settings, length):
    """The run's warm-up in optimizer steps: none at `warmup_epochs: 0`."""
    epochs = settings.get("warmup_epochs") or 0
    return steps_from_epochs(epochs, length.steps_per_epoch) if epochs > 0 else 0


class Cosine(Policy):
    """Linear warm-up from `min_lr` to `max_lr` over `warmup_steps`, then half a cosine down
    to `min_lr` at the end of the run:

        lr = min_lr + (max_lr - min_lr) * step / warmup_steps                  step < warmup
        lr = min_lr + (max_lr - min_lr) / 2 * (1 + cos(pi * p)),  p = (step - warmup_steps)
                                                         / (total_steps - warmup_steps)

    as Keras' `CosineDecay(min_lr, total_steps - warmup_steps, alpha=min_lr_fraction,
    warmup_target=max_lr, warmup_steps=warmup_steps)` and timm's `CosineLRScheduler` with
    `warmup_prefix=True`, `warmup_lr_init=lr_min`.
    """

    name = "cosine"
    bounds = ("max_lr",)

    def __init__(self, max_lr, total_steps, warmup_steps=0, min_lr_fraction=0.0):
        if not 0 <= warmup_steps < total_steps:
            raise InputError(f"the warm-up ({warmup_steps} steps) must end before the run "
                             f"({total_steps} steps); lower train.warmup_epochs.")
        self.max_lr, self.total_steps = max_lr, total_steps
        self.warmup_steps, self.min_lr_fraction = warmup_steps, min_lr_fraction

    def __call__(self, step, ops=np):
        min_lr = self.min_lr_fraction * self.max_lr
        warming = min_lr + (self.max_lr - min_lr) * step / max(self.warmup_steps, 1)
        decayed = ops.clip((step - self.warmup_steps) / (self.total_steps - self.warmup_steps),
                           0.0, 1.0)
        annealing = cosine_anneal(self.max_lr, min_lr, decayed, ops)
        return ops.where(step < self.warmup_steps, warming, annealing)

    @classmethod
    def arguments(cls, settings, length):
        return {"max_lr": required_setting(cls.name, settings, "max_lr"),
                "total_steps": length.total_steps,
                "warmup_steps": warmup_steps(settings, length),
                **optional_settings(settings, "min_lr_fraction")}


class SGDR(Policy):
    """Loshchilov and Hutter's SGDR: cosine from the cycle's peak down to `min_lr`, then a
    warm restart. Cycle i (from 0) lasts `first_cycle_steps * cycle_mul**i` steps and peaks at
    `min_lr + (max_lr - min_lr) * cycle_decay**i`.

    As Keras' `CosineDecayRestarts(max_lr, first_cycle_steps, t_mul=cycle_mul,
    m_mul=cycle_decay, alpha=min_lr_fraction)`. timm's `CosineLRScheduler` decays the peak
    itself (`max_lr * cycle_decay**i`), which differs from Keras only where both a floor and a
    decay are set. The run may end inside a cycle; nothing ties the cycles to its length.
    """

    name = "sgdr"
    bounds = ("max_lr",)

    def __init__(self, max_lr, first_cycle_steps, cycle_mul=2.0, cycle_decay=1.0,
                 min_lr_fraction=0.0):
        if cycle_mul < 1:
            raise InputError(f"train.cycle_mul must be at least 1, got {cycle_mul!r}: cycles "
                             "that shrink would end in finitely many steps.")
        self.max_lr, self.first_cycle_steps = max_lr, first_cycle_steps
        self.cycle_mul, self.cycle_decay = cycle_mul, cycle_decay
        self.min_lr_fraction = min_lr_fraction

    def cycle_start(self, cycle, ops):
        """Where cycle `cycle` starts, in units of the first cycle."""
        if self.cycle_mul == 1:
            return cycle
        return (ops.power(self.cycle_mul, cycle) - 1.0) / (self.cycle_mul - 1.0)

    def __call__(self, step, ops=np):
        position = step / self.first_cycle_steps  # in units of the first cycle
        if self.cycle_mul == 1:
            cycle = ops.floor(position)
        else:
            cycle = ops.floor(ops.log(1.0 + position * (self.cycle_mul - 1.0))
                              / math.log(self.cycle_mul))
            # The logarithm rounds in float32 and can land a cycle off at a restart; the
            # cycle's own ends decide.
            cycle = ops.where(position < self.cycle_start(cycle, ops), cycle - 1.0, cycle)
            cycle = ops.where(position >= self.cycle_start(cycle + 1.0, ops), cycle + 1.0, cycle)
        fraction = (position - self.cycle_start(cycle, ops)) / ops.power(self.cycle_mul, cycle)
        min_lr = self.min_lr_fraction * self.max_lr
        peak = min_lr + (self.max_lr - min_lr) * ops.power(self.cycle_decay, cycle)
        return cosine_anneal(peak, min_lr, fraction, ops)

    @classmethod
    def arguments(cls, settings, length):
        first = required_setting(cls.name, settings, "first_cycle_epochs")
        return {"max_lr": required_setting(cls.name, settings, "max_lr"),
                "first_cycle_steps": steps_from_epochs(first, length.steps_per_epoch),
                **optional_settings(settings, "cycle_mul", "cycle_decay", "min_lr_fraction")}


# The cooldown's shape: the fraction of (max_lr - min_lr) left at fraction p of the cooldown.
COOLDOWN_SHAPES = {
    "linear": lambda p, ops: 1.0 - p,
    "cosine": lambda p, ops: 0.5 * (1.0 + ops.cos(math.pi * p)),
    "1-sqrt": lambda p, ops: 1.0 - ops.sqrt(p),
}


class WSD(Policy):
    """Warmup-stable-decay: a linear warm-up from `min_lr` to `max_lr`, `max_lr` until the
    last `cooldown_steps`, then a cooldown towards `min_lr` shaped `linear`, `cosine` or
    `1-sqrt` (Haegele et al. 2024 found 1-sqrt the best; it is the default).

    As transformers' `get_wsd_schedule(num_warmup_steps=warmup_steps, num_decay_steps=
    cooldown_steps, num_training_steps=total_steps, decay_type=cooldown_shape,
    min_lr_ratio=min_lr_fraction)`: at cooldown fraction p = (step - cooldown start) /
    cooldown_steps the rate is `min_lr + (max_lr - min_lr) * shape(p)`, so the last step is
    one step short of `min_lr`.
    """

    name = "wsd"
    bounds = ("max_lr",)

    def __init__(self, max_lr, total_steps, cooldown_steps, warmup_steps=0,
                 cooldown_shape="1-sqrt", min_lr_fraction=0.0):
        if cooldown_shape not in COOLDOWN_SHAPES:
            raise InputError(f"train.cooldown_shape must be one of {', '.join(COOLDOWN_SHAPES)},"
                             f" got {cooldown_shape!r}.")
        if warmup_steps + cooldown_steps > total_steps:
            raise InputError(f"warm-up ({warmup_steps} steps) and cooldown ({cooldown_steps} "
                             f"steps) are longer than the run ({total_steps} steps); lower "
                             "train.warmup_epochs or train.cooldown_fraction.")
        self.max_lr, self.total_steps = max_lr, total_steps
        self.cooldown_steps, self.warmup_steps = cooldown_steps, warmup_steps
        self.cooldown_shape, self.min_lr_fraction = cooldown_shape, min_lr_fraction

    def __call__(self, step, ops=np):
        min_lr = self.min_lr_fraction * self.max_lr
        cooldown_start = self.total_steps - self.cooldown_steps
        warmed = step / max(self.warmup_steps, 1)
        cooled = ops.clip((step - cooldown_start) / max(self.cooldown_steps, 1), 0.0, 1.0)
        left = ops.where(step < self.warmup_steps, warmed,
                         COOLDOWN_SHAPES[self.cooldown_shape](cooled, ops))
        return min_lr + (self.max_lr - min_lr) * left

    @classmethod
    def arguments(cls, settings, length):
        cooldown = required_setting(cls.name, settings, "cooldown_fraction")
        return {"max_lr": required_setting(cls.name, settings, "max_lr"),
                "total_steps": length.total_steps,
                "cooldown_steps": math.floor(cooldown * length.total_steps + 0.5),
                "warmup_steps": warmup_steps(settings, length),
                **optional_settings(settings, "cooldown_shape", "min_lr_fraction")}
