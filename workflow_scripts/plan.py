"""The study's plan: the runs it trains, the policies that share a twin's runs, and the runs
whose cyclical bounds come from the LR range test.

Decided here once, without TensorFlow, for the rules (rules/common.smk builds the DAG from
it), training and the report. A policy's *twin* is another configured policy that gives the
same learning rate at every step of the configured runs (modified_triangular2 is triangular2
while a run ends before its halving restarts): one run serves both, trained under the twin's
name, and the report shows it for both.
"""

from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Grid:
    """The configured runs: every target x architecture x policy x seed, where a policy with
    a twin (`twins`: target -> {policy: its twin}) has no runs of its own."""

    targets: tuple
    architectures: tuple
    policies: tuple
    seeds: tuple
    twins: dict = field(default_factory=dict)

    def twins_of(self, target):
        return self.twins.get(target, {})

    def run_keys(self, target):
        """The trained runs of `target`: (target, arch, policy, seed), twins left out."""
        return [(target, arch, policy, int(seed))
                for arch in self.architectures for policy in self.policies
                if policy not in self.twins_of(target) for seed in self.seeds]

    def all_run_keys(self):
        """The trained runs of every target, in the configured order."""
        return [key for target in self.targets for key in self.run_keys(target)]
