"""Names of the learning-rate policies and the bounds each takes from the LR range test.

Kept apart from `schedules` (which needs Keras) so that the Snakefile can read them without
loading TensorFlow.
"""

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
