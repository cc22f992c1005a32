"""The study's plan: the runs it trains, the policies that share a twin's runs, the runs
whose cyclical bounds come from the LR range test, and the learning-rate scales.

Decided here once, without TensorFlow, for the rules (rules/common.smk builds the DAG from
it), training and the report. A policy's *twin* is another configured policy that gives the
same learning rate at every step of the configured runs (modified_triangular2 is triangular2
while a run ends before its halving restarts): one run serves both, trained under the twin's
name, and the report shows it for both. A *learning-rate scale* multiplies every learning
rate of a policy (`policies.scaled_learning_rates`); each configured scale is a run of its
own, and twins stay twins at every scale. Scale 1 is the study's own learning rates.
"""

from dataclasses import dataclass, field
from typing import NamedTuple

from workflow_scripts.policies import REGISTRY


def needs_lr_finder_bounds(policy, train_settings):
    """Whether `policy`'s runs take their bounds from the LR range test: a bound it needs
    (its class's `bounds`) is unset in `train_settings` (config `train` with the target's
    overrides)."""
    return any(train_settings.get(bound) is None for bound in REGISTRY[policy].bounds)


def twins(policies, train_settings):
    """policy -> its twin among `policies`, for the policies that have one."""
    found = {}
    for policy in policies:
        twin = REGISTRY[policy].same_schedule_as(train_settings)
        if twin in policies and twin != policy:
            found[policy] = twin
    return found


def scale_label(lr_scale):
    """How a run's folder names its learning-rate scale: nothing at 1, so that the study's
    own runs keep their paths, else '-lr<scale>x' ('-lr0.5x', '-lr2x')."""
    return "" if float(lr_scale) == 1 else f"-lr{float(lr_scale):g}x"


def scale_of_label(label):
    """The learning-rate scale a run folder's `scale_label` names."""
    return float(label[len("-lr"):-len("x")]) if label else 1.0


def checked_lr_scales(lr_scales):
    """The configured scales as floats; ValueError unless they include 1 (the comparison at
    the study's own learning rates) and name distinct folders."""
    scales = tuple(float(scale) for scale in lr_scales)
    if 1.0 not in scales:
        raise ValueError(f"lr_scales {list(lr_scales)} lacks 1: the report compares the "
                         "policies at their own learning rates (scale 1) and measures the "
                         "other scales against it; add 1 to lr_scales.")
    labels = [scale_label(scale) for scale in scales]
    if len(set(labels)) < len(labels):
        raise ValueError(f"lr_scales {list(lr_scales)}: two scales print alike "
                         f"({', '.join(labels)}) and would share run folders; keep at most "
                         "six significant digits apart.")
    return scales


class PlannedRun(NamedTuple):
    """One run of the plan; equal to the plain tuple of its values."""

    target: str
    arch: str
    policy: str
    seed: int
    lr_scale: float = 1.0

    def wildcards(self):
        """The run's wildcards for the rules' patterns (`runs.RUN`)."""
        return {"target": self.target, "arch": self.arch, "policy": self.policy,
                "seed": self.seed, "lr_scale": scale_label(self.lr_scale)}


@dataclass(frozen=True)
class Grid:
    """The configured runs: every target x architecture x policy x learning-rate scale x
    seed, where a policy with a twin (`twins`: target -> {policy: its twin}) has no runs of
    its own."""

    targets: tuple
    architectures: tuple
    policies: tuple
    seeds: tuple
    twins: dict = field(default_factory=dict)
    lr_scales: tuple = (1.0,)

    def twins_of(self, target):
        return self.twins.get(target, {})

    def run_keys(self, target):
        """The trained runs of `target` (PlannedRun), twins left out."""
        return [PlannedRun(target, arch, policy, int(seed), float(scale))
                for arch in self.architectures for policy in self.policies
                if policy not in self.twins_of(target)
                for scale in self.lr_scales for seed in self.seeds]

    def all_run_keys(self):
        """The trained runs of every target, in the configured order."""
        return [key for target in self.targets for key in self.run_keys(target)]
