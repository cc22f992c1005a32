"""The learning-rate policies as Keras schedules, for the optimizer of a training run.

`make_schedule(policy, **params)` wraps the policy's formula (`policies`) in one Keras
`LearningRateSchedule`: `float(schedule(step))` is the learning rate at optimizer step `step`
(0-based), evaluated with `keras.ops` in float32, so that it runs inside `tf.function` and
XLA; `get_config()` holds the policy's name and parameters, so a saved model's optimizer
restores its schedule.

With `train.cycle_momentum`, `make_momentum_schedule` is the policy's momentum at each step
and `CycledMomentumSGD` is Keras' SGD reading it at the step counter, as the learning rate
is read: a resumed run continues the momentum exactly too.
"""

import keras
import numpy as np
from keras import ops

from workflow_scripts.policies import REGISTRY


@keras.saving.register_keras_serializable(package="clr")
class PolicySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate of `policy` (a name in `policies.POLICIES`) built from `params`."""

    def __init__(self, policy, **params):
        self.policy = REGISTRY[policy](**params)

    def __call__(self, step):
        return self.policy(ops.cast(step, "float32"), ops)

    def get_config(self):
        return {"policy": self.policy.name, **self.policy.get_config()}


@keras.saving.register_keras_serializable(package="clr")
class MomentumSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The momentum of `policy` between `base_momentum` and `max_momentum`, inverse to its
    learning rate (`Policy.height`)."""

    def __init__(self, policy, base_momentum, max_momentum, **params):
        self.policy = REGISTRY[policy](**params)
        self.base_momentum, self.max_momentum = base_momentum, max_momentum

    def __call__(self, step):
        return self.policy.momentum(ops.cast(step, "float32"), self.base_momentum,
                                    self.max_momentum, ops)

    def get_config(self):
        return {"policy": self.policy.name, "base_momentum": self.base_momentum,
                "max_momentum": self.max_momentum, **self.policy.get_config()}


@keras.saving.register_keras_serializable(package="clr")
class CycledMomentumSGD(keras.optimizers.SGD):
    """Keras' SGD whose momentum is `momentum_schedule(iterations)` at every step.

    The update is Keras' own, `velocity = momentum * velocity - lr * g` and `w += velocity`
    (Nesterov: `w += momentum * velocity - lr * g`), with this step's momentum.
    """

    def __init__(self, learning_rate, momentum_schedule, nesterov=False, **kwargs):
        if isinstance(momentum_schedule, dict):  # from a saved model's config
            momentum_schedule = keras.saving.deserialize_keras_object(momentum_schedule)
        # Any nonzero momentum makes SGD build its velocity slots; the schedule replaces it.
        super().__init__(learning_rate, momentum=float(momentum_schedule.max_momentum),
                         nesterov=nesterov, **kwargs)
        self.momentum_schedule = momentum_schedule

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        momentum = ops.cast(self.momentum_schedule(self.iterations), variable.dtype)
        velocity = self.momentums[self._get_variable_index(variable)]
        self.assign(velocity, ops.subtract(ops.multiply(velocity, momentum),
                                           ops.multiply(gradient, learning_rate)))
        if self.nesterov:
            self.assign_add(variable, ops.subtract(ops.multiply(velocity, momentum),
                                                   ops.multiply(gradient, learning_rate)))
        else:
            self.assign_add(variable, velocity)

    def get_config(self):
        config = super().get_config()
        del config["momentum"]
        config["momentum_schedule"] = keras.saving.serialize_keras_object(self.momentum_schedule)
        return config


def make_schedule(policy, **params):
    """The Keras schedule of `policy`, from exactly the parameters the policy takes."""
    return PolicySchedule(policy, **params)


def make_momentum_schedule(policy, momentum, **params):
    """The momentum schedule of `policy` for `momentum` (`policies.momentum_params`), or None
    where it is empty (the optimizer's momentum stays `train.momentum`)."""
    return MomentumSchedule(policy, **momentum, **params) if momentum else None


def schedule_values(schedule, num_steps):
    """The learning rate at steps 0 .. num_steps - 1, one vectorized evaluation.

    A float64 array holding the float32 values the optimizer sees.
    """
    values = schedule(ops.arange(num_steps, dtype="int64"))
    return np.asarray(ops.convert_to_numpy(values), dtype=np.float64).reshape(num_steps)
