"""What every learning-rate policy is: the `Policy` base class, the registry it joins, and the
helpers a policy reads its training settings with.

A policy's learning rate is a pure function of the optimizer's 0-based step counter, so a job
resumed from a checkpoint continues exactly where it stopped (the step counter is saved with
the optimizer). Each class declares its `name`, the `bounds` that the LR range test can
supply, and takes its parameters as keyword arguments; `__call__(step, ops)` is the formula,
written against `ops` so that it evaluates with NumPy here and with `keras.ops` inside a train
step (`schedules.make_schedule`). No TensorFlow is needed: the Snakefile reads the registry.

A policy that cycles the optimizer's momentum against its learning rate, as PyTorch's
`CyclicLR` and `OneCycleLR` do, sets `cycles_momentum` and defines `height(step, ops)`, the
fraction of the way from the momentum's maximum to its base at `step`: momentum is
`max_momentum - (max_momentum - base_momentum) * height`.

The paper's policies are in `paper_policies`, those of later practice in `modern_policies`;
`policies` gathers the registry.
"""

import inspect
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from workflow_scripts.stage import InputError

REGISTRY = {}  # policy name -> class, in the order the classes are defined


class Policy(ABC):
    """A learning-rate policy. Subclasses set `name` (which registers them) and `bounds`."""

    name = None
    bounds = ()  # of base_lr and max_lr, those the LR range test supplies when unset
    cycles_momentum = False  # whether `height` is defined (train.cycle_momentum)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name is not None:
            REGISTRY[cls.name] = cls

    @abstractmethod
    def __call__(self, step, ops=np):
        """The learning rate at float `step` (a number or an array/tensor of them)."""

    @classmethod
    @abstractmethod
    def arguments(cls, settings, length):
        """This policy's keyword arguments for a run of `length` (a RunLength) with these
        training `settings`; `required_setting` and `optional_settings` read them."""

    def height(self, step, ops=np):
        """How far the momentum is from its maximum towards its base at `step`, in [0, 1]."""
        raise NotImplementedError(f"policy {self.name!r} does not cycle the momentum")

    def momentum(self, step, base_momentum, max_momentum, ops=np):
        return max_momentum - (max_momentum - base_momentum) * self.height(step, ops)

    def get_config(self):
        signature = inspect.signature(type(self).__init__)
        return {name: getattr(self, name) for name in signature.parameters if name != "self"}

    @classmethod
    def same_schedule_as(cls, settings):
        """The policy that gives this one's learning rate at every step of any run with
        these training `settings` (config `train` with the target's overrides), or None."""
        return None


def cosine_anneal(start, end, fraction, ops):
    """From `start` at fraction 0 to `end` at fraction 1 along half a cosine."""
    return end + (start - end) / 2.0 * (1.0 + ops.cos(math.pi * fraction))


def steps_from_epochs(step_size_epochs, steps_per_epoch):
    """Optimizer steps in `step_size_epochs` epochs: round(step_size_epochs * steps_per_epoch).

    Halves round up and the result is at least 1, so fractional sizes (0.5 epoch) work on
    any dataset. The paper's Pneumothorax run: 2 epochs x 541 batches = 1082 steps.
    """
    return max(1, math.floor(step_size_epochs * steps_per_epoch + 0.5))


@dataclass(frozen=True)
class RunLength:
    """How long a run is: optimizer steps per epoch, and epochs."""

    steps_per_epoch: int
    epochs: int

    @property
    def total_steps(self):
        return self.steps_per_epoch * self.epochs


def required_setting(policy, settings, key):
    """`settings[key]`; a missing or None value is an error naming the key (and, for an LR
    bound, where the bound comes from)."""
    value = settings.get(key)
    if value is None:
        hint = (" (null means the LR finder's bound; fill it in from its result first)"
                if key in ("base_lr", "max_lr") else "")
        raise InputError(f"Policy {policy!r} needs setting {key!r}, got None{hint}.")
    return value


def optional_settings(settings, *keys):
    """The `keys` that `settings` sets (not None); the others keep the policy's default."""
    return {key: settings[key] for key in keys if settings.get(key) is not None}
