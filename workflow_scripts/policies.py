"""The registry of learning-rate policies and what the workflow asks of it.

Every policy is one class (`policy_base.Policy`): the paper's in `paper_policies`, cosine,
SGDR and WSD in `modern_policies`. Adding a policy is adding one class to either; the config
schema's `policies` enum must list its name too (a test checks that it does). The Snakefile
reads the registry for which policies need an LR range test and which are the same schedule
as another; a training job asks it for a run's schedule (`schedule_params`) and, with
`train.cycle_momentum`, its momentum (`momentum_params`).
"""

import inspect

from workflow_scripts import modern_policies, paper_policies  # noqa: F401 - they register
from workflow_scripts.policy_base import REGISTRY, RunLength, required_setting
from workflow_scripts.stage import InputError

# The paper's policies first, each module's in the order they are defined.
POLICIES = tuple(sorted(REGISTRY, key=lambda name: REGISTRY[name].__module__
                        != paper_policies.__name__))


def lr_bounds(policy):
    """The LR-finder bounds `policy` needs: none, ('max_lr',) or ('base_lr', 'max_lr')."""
    return REGISTRY[policy].bounds


def parameters(policy):
    """(required, optional) parameter names of `policy`."""
    signature = inspect.signature(REGISTRY[policy].__init__)
    found = [p for p in signature.parameters.values() if p.name != "self"]
    required = tuple(p.name for p in found if p.default is inspect.Parameter.empty)
    optional = tuple(p.name for p in found if p.default is not inspect.Parameter.empty)
    return required, optional


def extra_parameters(policy):
    """What `policy` takes beyond its learning rates and step size (for the report)."""
    required, optional = parameters(policy)
    plain = {*LEARNING_RATE_SETTINGS, "step_size"}
    return tuple(name for name in required + optional if name not in plain)


# The train settings that are learning rates, whichever policy reads them: a learning-rate
# scale (`plan`) multiplies each.
LEARNING_RATE_SETTINGS = ("learning_rate", "base_lr", "max_lr")


def scaled_learning_rates(settings, lr_scale):
    """`settings` with every learning rate it sets multiplied by `lr_scale`; at 1 the
    settings as they are, so that a run's checkpoint fingerprint stays what it was."""
    if lr_scale == 1:
        return dict(settings)
    return {key: value * lr_scale if key in LEARNING_RATE_SETTINGS and value is not None
            else value for key, value in settings.items()}


def schedule_params(policy, settings, steps_per_epoch, total_epochs):
    """The keyword arguments of `policy` for a run of `total_epochs` epochs of
    `steps_per_epoch` steps, read from its training `settings` by the policy's `arguments`."""
    return REGISTRY[policy].arguments(settings, RunLength(steps_per_epoch, total_epochs))


def momentum_params(policy, settings):
    """`{base_momentum, max_momentum}` where the run cycles SGD's momentum against its learning
    rate (`train.cycle_momentum` and a policy that cycles it), else `{}`.

    SGD only: PyTorch cycles Adam's beta_1 instead, but Keras' Adam takes beta_1 as a fixed
    number, and a cycled beta_1 is not the method the study compares; it is refused.
    """
    if not settings.get("cycle_momentum") or not REGISTRY[policy].cycles_momentum:
        return {}
    if settings["optimizer"] != "sgd":
        raise InputError(f"train.cycle_momentum cycles SGD's momentum, but train.optimizer is "
                         f"{settings['optimizer']!r}; set optimizer: sgd or cycle_momentum: "
                         "false.")
    base = required_setting(policy, settings, "base_momentum")
    top = required_setting(policy, settings, "max_momentum")
    if not 0 <= base <= top < 1:
        raise InputError(f"train.base_momentum and max_momentum must satisfy 0 <= base <= max "
                         f"< 1, got {base!r} and {top!r}.")
    return {"base_momentum": base, "max_momentum": top}
