"""The equal-budget study in the report, on generated runs: sensitivity to the learning-rate
scale, robustness, the comparison tuned on validation, time to target and the performance
profile. Numbers are recomputed here from the run files with sklearn and pandas."""

import html
import json
import math

import numpy as np
import pandas as pd
import pytest
from fake_runs import run_folder, write_fake_results
from sklearn.metrics import roc_auc_score
from test_report import assert_png, build_all, settings_for

from workflow_scripts.plan import Grid
from workflow_scripts.report_budget import (
    NEAR_BEST,
    performance_profile,
    time_to_target,
    time_to_target_table,
)

POLICIES = ("constant", "time_decay", "triangular")
SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
SEEDS = (0, 1, 2)
TARGETS = ("Effusion", "Pneumothorax")
# The validation AUROC of triangular at scale 4 lifted well above the others: its test
# AUROC is best at scale 1 (fake_runs.default_scale_skill), so validation and test disagree.
MISLEADING = {("triangular", 4.0): 0.3}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    info = write_fake_results(results, targets=TARGETS, policies=POLICIES, seeds=SEEDS,
                              test_images=150, lr_scales=SCALES, val_auroc_shift=MISLEADING)
    grid = Grid(TARGETS, ("mobilenet",), POLICIES, SEEDS, lr_scales=SCALES)
    tables, overview, page = build_all(results, info, settings_for(grid), TARGETS)
    return {"results": results, "tables": tables, "overview": overview, "page": page}


def run_auroc(results, target, policy, lr_scale, seed):
    predictions = pd.read_parquet(run_folder(target, "mobilenet", policy, seed, results,
                                             lr_scale) / "predictions.parquet")
    return roc_auc_score(predictions["label"], predictions["score"])


def final_val_auroc(results, target, policy, lr_scale, seed):
    history = pd.read_csv(run_folder(target, "mobilenet", policy, seed, results, lr_scale)
                          / "history.csv")
    return history["val_auroc"].iat[-1]


def test_sensitivity_has_every_policy_at_every_scale_with_seed_means(study):
    table = study["tables"]["lr_sensitivity"]
    effusion = table[table["target"] == "Effusion"]
    assert len(effusion) == len(POLICIES) * len(SCALES)
    for row in effusion.itertuples():
        aurocs = [run_auroc(study["results"], "Effusion", row.policy, row.lr_scale, seed)
                  for seed in SEEDS]
        assert row.seeds == 3
        assert row.auroc == pytest.approx(np.mean(aurocs), abs=1e-9)
        assert row.auroc_sd == pytest.approx(np.std(aurocs, ddof=1), abs=1e-9)
        assert row.auroc_ci_low <= row.auroc <= row.auroc_ci_high
        assert row.val_auroc == pytest.approx(np.mean([
            final_val_auroc(study["results"], "Effusion", row.policy, row.lr_scale, seed)
            for seed in SEEDS]))
    # The comparison at the study's own rates reads scale 1 alone.
    table5 = study["tables"]["table5_results"]
    own = table5[(table5["target"] == "Effusion") & (table5["policy"] == "triangular")]
    at_one = effusion[(effusion["policy"] == "triangular") & (effusion["lr_scale"] == 1.0)]
    assert own["auroc"].iat[0] == pytest.approx(at_one["auroc"].iat[0])


def test_robustness_is_the_loss_from_the_best_scale_to_the_worst(study):
    sensitivity = study["tables"]["lr_sensitivity"]
    robustness = study["tables"]["lr_robustness"]
    assert len(robustness) == len(TARGETS) * len(POLICIES)
    for row in robustness.itertuples():
        curve = sensitivity[(sensitivity["target"] == row.target)
                            & (sensitivity["policy"] == row.policy)].set_index("lr_scale")[
            "auroc"].sort_index()
        assert row.scales == len(SCALES)
        assert (row.best_scale, row.worst_scale) == (curve.idxmax(), curve.idxmin())
        assert row.auroc_lost == pytest.approx(curve.max() - curve.min())
        # Near best: the unbroken stretch of scales around the best within NEAR_BEST.
        near = [scale for scale in curve.index
                if row.near_best_low <= scale <= row.near_best_high]
        assert row.best_scale in near
        assert (curve[near] >= curve.max() - NEAR_BEST).all()
        for outside in (curve.index[curve.index < row.near_best_low][-1:].tolist()
                        + curve.index[curve.index > row.near_best_high][:1].tolist()):
            assert curve[outside] < curve.max() - NEAR_BEST
    # The generated skill falls off faster for the baselines than for triangular.
    effusion = robustness[robustness["target"] == "Effusion"].set_index("policy")
    assert effusion.at["constant", "auroc_lost"] > effusion.at["triangular", "auroc_lost"]


def test_the_tuned_comparison_chooses_on_validation_not_on_test(study):
    tuned = study["tables"]["tuned_comparison"]
    sensitivity = study["tables"]["lr_sensitivity"]
    for target in TARGETS:
        rows = tuned[tuned["target"] == target].set_index("policy")
        curves = sensitivity[sensitivity["target"] == target]
        triangular = curves[curves["policy"] == "triangular"].set_index("lr_scale")
        # Test prefers another scale; validation (lifted at 4) picks 4, and the table says
        # it is at the grid's edge.
        assert triangular["auroc"].idxmax() != 4.0
        assert rows.at["triangular", "tuned_scale"] == 4.0
        assert bool(rows.at["triangular", "at_grid_edge"])
        assert rows.at["triangular", "auroc"] == pytest.approx(triangular.at[4.0, "auroc"])
        for policy in POLICIES:
            mine = curves[curves["policy"] == policy].set_index("lr_scale")
            assert rows.at[policy, "tuned_scale"] == mine["val_auroc"].idxmax()
        # Each difference pairs the policy's seeds at its scale with the baseline's at its.
        constant_scale = rows.at["constant", "tuned_scale"]
        differences = [run_auroc(study["results"], target, "triangular", 4.0, seed)
                       - run_auroc(study["results"], target, "constant", constant_scale, seed)
                       for seed in SEEDS]
        assert rows.at["triangular", "delta_auroc_vs_constant"] == pytest.approx(
            np.mean(differences), abs=1e-9)
    # Adjusted over this table's comparisons of one target (2 policies x 2 baselines, less
    # a baseline against itself).
    effusion = tuned[tuned["target"] == "Effusion"]
    raw = effusion[["p_vs_constant", "p_vs_time_decay"]].to_numpy().ravel()
    assert np.isfinite(raw).sum() == 4
    assert (effusion[["p_adjusted_vs_constant", "p_adjusted_vs_time_decay"]].to_numpy()
            .ravel()[np.isfinite(raw)] >= raw[np.isfinite(raw)] - 1e-12).all()
    page = html.unescape(study["page"])
    assert "triangular (mobilenet, scale 4)" in page and "beyond the configured lr_scales" in page


def test_sensitivity_figures_and_the_performance_profile_are_pngs(study):
    folder = study["results"] / "report"
    for target in TARGETS:
        assert_png((folder / target / "figures" / "lr_sensitivity.png").read_bytes())
    assert_png(study["overview"]["performance_profile"])
    assert "Time to target: performance profile" in study["page"]


def history(arch, policy, seed, val_aurocs, seconds=2.0):
    epochs = np.arange(1, len(val_aurocs) + 1)
    return pd.DataFrame({"arch": arch, "policy": policy, "seed": seed, "lr_scale": 1.0,
                         "epoch": epochs, "val_auroc": val_aurocs,
                         "device_seconds": seconds * epochs})


def test_time_to_target_follows_the_baselines_median_best_and_never_is_infinite():
    histories = pd.concat([
        # The constant baseline's bests 0.70, 0.72, 0.80: the target is their median, 0.72.
        history("mobilenet", "constant", 0, [0.60, 0.70, 0.69]),
        history("mobilenet", "constant", 1, [0.65, 0.72, 0.71]),
        history("mobilenet", "constant", 2, [0.72, 0.80, 0.75]),
        history("mobilenet", "triangular", 0, [0.73, 0.74, 0.75], seconds=3.0),
        history("mobilenet", "triangular", 1, [0.70, 0.72, 0.76], seconds=3.0),
        history("mobilenet", "triangular", 2, [0.50, 0.60, 0.71], seconds=3.0),  # never
        history("mobilenet", "one_cycle", 0, [0.5, 0.6, 0.7]),
        history("mobilenet", "one_cycle", 1, [0.5, 0.6, 0.7]),
        history("mobilenet", "one_cycle", 2, [0.5, 0.6, 0.73]),
    ], ignore_index=True)
    reach = time_to_target(histories, "constant").set_index(["policy", "seed"])
    assert (reach["target_val_auroc"] == 0.72).all()
    assert reach.loc[("constant", 0), "epochs"] == math.inf
    assert reach.loc[("constant", 1), "epochs"] == 2
    assert reach.loc[("constant", 2), "epochs"] == 1
    assert reach.loc[("triangular", 0), "device_seconds"] == 3.0
    assert reach.loc[("triangular", 1), "device_seconds"] == 6.0
    assert reach.loc[("triangular", 2), "epochs"] == math.inf
    grid = Grid(("Effusion",), ("mobilenet",), ("constant", "triangular", "one_cycle"), SEEDS)
    table = time_to_target_table("Effusion", time_to_target(histories, "constant"), grid)
    table = table.set_index("policy")
    assert table.at["constant", "epochs_until_target"] == 2  # median of inf, 2, 1
    assert table.at["triangular", "device_seconds_until_target"] == 6.0
    assert table.at["triangular", "seeds_at_target"] == 2
    # Two of three seeds never got there: the median is never.
    assert table.at["one_cycle", "epochs_until_target"] == math.inf
    assert table.at["one_cycle", "seeds_at_target"] == 1
    assert time_to_target(histories, None).empty


def test_the_performance_profile_counts_problems_within_tau_of_the_fastest():
    times = pd.DataFrame([
        # Problem 1: a 10 s, b 15 s, c never. Problem 2: a 30 s, b 20 s, c 70 s.
        # Problem 3: nobody reaches the target.
        ("T1", "m", "a", 10.0), ("T1", "m", "b", 15.0), ("T1", "m", "c", math.inf),
        ("T2", "m", "a", 30.0), ("T2", "m", "b", 20.0), ("T2", "m", "c", 70.0),
        ("T3", "m", "a", math.inf), ("T3", "m", "b", math.inf), ("T3", "m", "c", math.inf),
    ], columns=["target", "arch", "policy", "device_seconds_until_target"])
    profile = performance_profile(times, ("a", "b", "c"), taus=[1.0, 1.5, 2.0, 3.5, 4.0])
    share = profile.set_index(["policy", "tau"])["share"]
    assert (profile["problems"] == 3).all()
    assert [share[("a", tau)] for tau in (1.0, 1.5, 2.0, 3.5, 4.0)] == [1 / 3, 2 / 3, 2 / 3,
                                                                         2 / 3, 2 / 3]
    assert [share[("b", tau)] for tau in (1.0, 1.5, 2.0)] == [1 / 3, 2 / 3, 2 / 3]
    assert [share[("c", tau)] for tau in (1.0, 3.5, 4.0)] == [0, 1 / 3, 1 / 3]


def test_with_one_scale_the_budget_tables_are_empty_and_time_to_target_is_kept(tmp_path):
    info = write_fake_results(tmp_path, targets=("Effusion",), policies=POLICIES,
                              seeds=SEEDS, test_images=60)
    grid = Grid(("Effusion",), ("mobilenet",), POLICIES, SEEDS)
    tables, _, page = build_all(tmp_path, info, settings_for(grid), ("Effusion",))
    for name in ("lr_sensitivity", "lr_robustness", "tuned_comparison"):
        assert tables[name].empty, name
    times = tables["time_to_target"]
    assert list(times["policy"]) == list(POLICIES)
    metrics = json.loads((run_folder("Effusion", "mobilenet", "constant", 0, tmp_path)
                          / "metrics.json").read_text())
    assert "lr_scale" not in metrics["settings"]  # as a run written before scales existed
