"""The plan: runs trained, twins, the runs whose bounds come from the LR range test, and the
learning-rate scales."""

import pytest

from workflow_scripts.plan import (
    Grid,
    PlannedRun,
    checked_lr_scales,
    needs_lr_finder_bounds,
    scale_label,
    scale_of_label,
    twins,
)
from workflow_scripts.runs import RUN

CYCLICAL = ("triangular", "triangular2", "modified_triangular2")
# Two cycles of two-epoch steps: modified triangular2 never restarts its halving.
SHORT = {"epochs": 8, "step_size_epochs": 2, "reset_cycles": 3, "base_lr": None,
         "max_lr": None}
# Five cycles: the halving restarts after the third.
LONG = {**SHORT, "epochs": 20}


def test_modified_triangular2_is_triangular2s_twin_while_the_halving_never_restarts():
    assert twins(("constant", *CYCLICAL), SHORT) == {"modified_triangular2": "triangular2"}
    assert twins(("constant", *CYCLICAL), LONG) == {}


def test_a_twin_must_be_configured_to_stand_for_a_policy():
    assert twins(("constant", "modified_triangular2"), SHORT) == {}


def test_bounds_come_from_the_range_test_where_a_needed_bound_is_unset():
    assert not needs_lr_finder_bounds("constant", SHORT)
    assert not needs_lr_finder_bounds("time_decay", SHORT)
    assert needs_lr_finder_bounds("triangular", SHORT)
    assert needs_lr_finder_bounds("triangular", {**SHORT, "max_lr": 0.1})
    assert not needs_lr_finder_bounds("triangular", {**SHORT, "base_lr": 0.01, "max_lr": 0.1})
    # 1cycle needs max_lr only: its start is max_lr / div_factor.
    assert not needs_lr_finder_bounds("one_cycle", {**SHORT, "max_lr": 0.1})
    assert needs_lr_finder_bounds("one_cycle", SHORT)


def test_the_grid_trains_one_run_per_distinct_schedule_per_seed():
    grid = Grid(("Effusion", "Mass"), ("mobilenet",), ("constant", *CYCLICAL), (0, 1),
                twins={"Effusion": twins(("constant", *CYCLICAL), SHORT)})
    effusion = grid.run_keys("Effusion")
    assert [key[2] for key in effusion] == ["constant"] * 2 + ["triangular"] * 2 + [
        "triangular2"] * 2
    assert len(grid.run_keys("Mass")) == 8
    assert grid.all_run_keys() == effusion + grid.run_keys("Mass")


def test_each_learning_rate_scale_is_a_run_and_scale_one_keeps_its_path():
    policies = ("constant", *CYCLICAL)
    plain = Grid(("Effusion",), ("mobilenet",), policies, (0, 1),
                 twins={"Effusion": twins(policies, SHORT)})
    scaled = Grid(plain.targets, plain.architectures, policies, plain.seeds, plain.twins,
                  lr_scales=(0.25, 0.5, 1.0, 2.0, 4.0))
    assert len(scaled.run_keys("Effusion")) == 5 * len(plain.run_keys("Effusion")) == 5 * 6
    # Twins stay twins at every scale: modified_triangular2 has no runs at any.
    assert {key.policy for key in scaled.run_keys("Effusion")} == {
        "constant", "triangular", "triangular2"}
    folders = {RUN.format(**key.wildcards()) for key in scaled.run_keys("Effusion")}
    assert {RUN.format(**key.wildcards()) for key in plain.run_keys("Effusion")} == {
        f"results/runs/Effusion/mobilenet/{policy}/seed{seed}"
        for policy in ("constant", "triangular", "triangular2") for seed in (0, 1)} < folders
    assert "results/runs/Effusion/mobilenet/triangular-lr0.25x/seed1" in folders
    assert PlannedRun("Effusion", "mobilenet", "constant", 0) == (
        "Effusion", "mobilenet", "constant", 0, 1.0)


@pytest.mark.parametrize("lr_scale", [0.25, 0.5, 1.0, 2.0, 3.0, 0.1, 10.0])
def test_a_scale_reads_back_from_its_folder_name(lr_scale):
    assert scale_of_label(scale_label(lr_scale)) == lr_scale


def test_scales_without_one_or_printing_alike_are_refused():
    assert checked_lr_scales([1, 0.5]) == (1.0, 0.5)
    with pytest.raises(ValueError, match=r"lr_scales \[0.5, 2\] lacks 1.*add 1 to lr_scales"):
        checked_lr_scales([0.5, 2])
    with pytest.raises(ValueError, match="print alike"):
        checked_lr_scales([1, 0.1234567, 0.12345671])
