"""Names of the learning-rate policies, the bounds each takes from the LR range test, and
which of them give the same schedule as another for a given config.

Kept apart from `schedules` (which needs Keras) so that the Snakefile can read them without
loading TensorFlow.
"""

import math
from fractions import Fraction

POLICIES = (
    "constant",
    "time_decay",
    "triangular",
    "triangular2",
    "exp_range",
    "modified_triangular2",
    "one_cycle",
)

# Policies whose bounds come from the LR range test; one_cycle takes `max_lr` only.
CYCLICAL_POLICIES = ("triangular", "triangular2", "exp_range", "modified_triangular2", "one_cycle")


def lr_bounds(policy):
    """The LR-finder bounds `policy` needs: none, ('max_lr',) or ('base_lr', 'max_lr')."""
    if policy not in CYCLICAL_POLICIES:
        return ()
    return ("max_lr",) if policy == "one_cycle" else ("base_lr", "max_lr")


def cycles_started(epochs, step_size_epochs, steps_per_epoch):
    """The CLR cycle of a run's last optimizer step (cycles are counted from 1), with
    `step_size` = round(step_size_epochs x steps_per_epoch) as `schedules` computes it."""
    step_size = max(1, math.floor(step_size_epochs * steps_per_epoch + 0.5))
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


def schedule_twin(policy, settings):
    """The policy that gives `policy`'s learning rate at every step of any run with these
    training `settings` (config `train` with the target's overrides), or None.

    modified_triangular2 is triangular2 until its halving restarts; exp_range with gamma 1 is
    triangular; time_decay with decay 0 is constant.
    """
    if policy == "modified_triangular2" and halving_never_restarts(
            settings["epochs"], settings["step_size_epochs"], settings["reset_cycles"]):
        return "triangular2"
    if policy == "exp_range" and settings["gamma"] == 1:
        return "triangular"
    if policy == "time_decay" and settings["decay"] == 0:
        return "constant"
    return None
