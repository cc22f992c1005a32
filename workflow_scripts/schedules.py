"""The learning-rate policies as Keras schedules, for the optimizer of a training run.

`make_schedule(policy, **params)` wraps the policy's formula (`policies`) in one Keras
`LearningRateSchedule`: `float(schedule(step))` is the learning rate at optimizer step `step`
(0-based), evaluated with `keras.ops` in float32, so that it runs inside `tf.function` and
XLA; `get_config()` holds the policy's name and parameters, so a saved model's optimizer
restores its schedule.
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


def make_schedule(policy, **params):
    """The Keras schedule of `policy`, from exactly the parameters the policy takes."""
    return PolicySchedule(policy, **params)


def schedule_values(schedule, num_steps):
    """The learning rate at steps 0 .. num_steps - 1, one vectorized evaluation.

    A float64 array holding the float32 values the optimizer sees.
    """
    values = schedule(ops.arange(num_steps, dtype="int64"))
    return np.asarray(ops.convert_to_numpy(values), dtype=np.float64).reshape(num_steps)
