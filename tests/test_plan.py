"""The plan: runs trained, twins, and the runs whose bounds come from the LR range test."""

from workflow_scripts.plan import Grid, needs_lr_finder_bounds, twins

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
