"""The report's intervals and "beyond noise" calls, simulated: seeds are the unit of
replication, and a true zero difference is called beyond noise no more often than the level
allows, also when the seed-to-seed variance dominates and there are only three or five
seeds."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from workflow_scripts.report_runs import TargetRuns
from workflow_scripts.report_statistics import (
    auroc_statistics,
    judge_differences,
    mean_over_seeds,
    resampled,
)

SEEDS = 5
SKILL = 1.0
IMAGE_NOISE = 0.5


def simulated_target(rng, seed_sd, effect=0.0, patients=120, seeds=SEEDS):
    """One target's test set and the scores of a baseline and a policy over `seeds` seeds.

    A run's score for an image is skill x (+1 positive, -1 negative) + the image's difficulty
    (shared by every run: hard images are hard for all) + the run's own noise. Its skill is
    SKILL (+ `effect` for the policy) + a seed effect ~ N(0, seed_sd): the seed-to-seed part.
    Each patient has 1 to 3 images.
    """
    patient = np.repeat(np.arange(patients), rng.integers(1, 4, patients))
    labels = (rng.random(len(patient)) < 0.4).astype(np.int8)
    difficulty = rng.normal(0, 1, len(patient))
    rows, scores = [], []
    for policy, shift in (("constant", 0.0), ("triangular", effect)):
        for seed in range(seeds):
            skill = SKILL + shift + rng.normal(0, seed_sd)
            scores.append(skill * (2 * labels - 1) + difficulty
                          + rng.normal(0, IMAGE_NOISE, len(labels)))
            rows.append({"arch": "mobilenet", "policy": policy, "seed": seed})
    test = pd.DataFrame({"image_index": [f"{i:08d}.png" for i in range(len(patient))],
                         "patient_id": patient, "label": labels})
    return TargetRuns(target="Effusion", runs=pd.DataFrame(rows), histories=pd.DataFrame(),
                      learning_rates=pd.DataFrame(), test=test,
                      scores=np.stack(scores)[:, :, None])  # one label column


def population_auroc(skill):
    """AUROC of a run with this skill on an infinite test set: P(positive > negative)."""
    return norm.cdf(2 * skill / np.sqrt(2 * (1 + IMAGE_NOISE ** 2)))


@pytest.mark.parametrize(("seeds", "seed_sd"), [(3, 0.35), (3, 0.15), (5, 0.35), (5, 0.15)])
def test_a_zero_difference_is_called_beyond_noise_at_most_6_percent_of_the_time(seeds, seed_sd):
    # A seed moves a run's AUROC by about 0.09 (seed_sd 0.35: the seeds' variance dominates)
    # or 0.04 (0.15: the test set's part matters too), while on the same test images much of
    # the test set's noise cancels from a paired difference. Welch-Satterthwaite's degrees
    # of freedom called 6.2% (3, 0.35) and 7.6% (3, 0.15) of these beyond noise.
    rng = np.random.default_rng(20261202 + seeds)
    p_values, calls = [], []
    for _ in range(500):
        target = simulated_target(rng, seed_sd=seed_sd, seeds=seeds)
        _, differences = auroc_statistics(target, resampled(target, 100)[0], ["constant"], 0.95)
        judged = judge_differences(differences, "fdr_bh", 0.95)
        p_values.append(differences["p_value"].iat[0])
        calls.append(bool(judged["beyond_noise"].iat[0]))
    rate = np.mean(calls)
    # 500 comparisons: a true rate of 5% exceeds 6% in about a fifth of simulations; the
    # seeds' n - 1 call 0.8% to 2.6% of these four sets.
    assert rate <= 0.06, rate
    assert np.mean(np.array(p_values) <= 0.05) == rate  # one comparison: nothing to adjust


def test_a_real_difference_is_found_at_five_seeds():
    rng = np.random.default_rng(7)
    found = []
    for _ in range(100):
        target = simulated_target(rng, seed_sd=0.1, effect=0.4)
        _, differences = auroc_statistics(target, resampled(target, 200)[0], ["constant"], 0.95)
        found.append(bool(judge_differences(differences, "fdr_bh", 0.95)["beyond_noise"].iat[0]))
    assert np.mean(found) > 0.8


def test_the_interval_of_a_policys_mean_auroc_covers_the_truth_at_its_level():
    rng = np.random.default_rng(11)
    # A seed moves the AUROC by about 0.05 (sd); the test set's standard error is about 0.02.
    # (Far larger seed effects push the AUROC against its ceiling of 1, where the seeds'
    # skewed spread makes any five-seed t-interval undercover: 90% at an sd of 0.09.)
    seed_sd = 0.2
    # The truth: the mean over seeds and test sets of the AUROC, E[population_auroc(skill)].
    skills = SKILL + seed_sd * norm.ppf((np.arange(200_000) + 0.5) / 200_000)
    truth = population_auroc(skills).mean()
    covered = []
    for _ in range(400):
        target = simulated_target(rng, seed_sd)
        auroc, _ = auroc_statistics(target, resampled(target, 200)[0], [], 0.95)
        constant = auroc[auroc["policy"] == "constant"].iloc[0]
        covered.append(constant["auroc_ci_low"] <= truth <= constant["auroc_ci_high"])
    assert 0.93 <= np.mean(covered) <= 0.98, np.mean(covered)


def test_mean_over_seeds_on_known_numbers():
    # Three seeds, no test-set noise (every resample equals the plain value): the classic
    # one-sample t-interval with 2 degrees of freedom.
    values = np.repeat(np.array([[0.01], [0.03], [0.05]]), 51, axis=1)
    mean, low, high, p_value = mean_over_seeds(values, 0.95)
    assert mean == pytest.approx(0.03)
    half_width = 4.302652729749464 * 0.02 / np.sqrt(3)
    assert (low, high) == pytest.approx((0.03 - half_width, 0.03 + half_width))
    t = 0.03 / (0.02 / np.sqrt(3))
    assert p_value == pytest.approx(1 - t / np.sqrt(t ** 2 + 2))  # two-sided, t with 2 df
    # Identical runs: exactly zero, no interval, never beyond noise.
    assert mean_over_seeds(np.zeros((5, 51)), 0.95) == (0.0, 0.0, 0.0, 1.0)


def test_too_few_seeds_are_not_judged_and_shared_runs_leave_the_family():
    differences = pd.DataFrame({
        "arch": ["mobilenet"] * 4, "policy": ["triangular", "triangular2",
                                              "modified_triangular2", "one_cycle"],
        "baseline": ["constant"] * 4, "seeds": [5, 5, 5, 2],
        "delta_auroc": [0.02, 0.01, 0.01, 0.03], "ci_low": 0.0, "ci_high": 0.0,
        "p_value": [0.01, 0.04, 0.04, 0.001]})
    judged = judge_differences(differences, "holm", 0.95,
                               twins={"modified_triangular2": "triangular2"})
    # Holm over the two judged, distinct comparisons: 0.01 x 2 and 0.04 x 1.
    assert judged["p_adjusted"].iloc[:3].tolist() == pytest.approx([0.02, 0.04, 0.04])
    assert judged["beyond_noise"].iloc[:3].tolist() == [True, True, True]
    assert pd.isna(judged["p_adjusted"].iat[3]) and pd.isna(judged["beyond_noise"].iat[3])
