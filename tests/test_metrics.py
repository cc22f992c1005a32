import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score

from workflow_scripts.metrics import (
    bootstrap_auroc_interval,
    epochs_to_target,
    patient_draws,
    summarize_predictions,
    threshold_metrics,
    weighted_aurocs,
    youden_threshold,
)


def predictions(n=400, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = 1 / (1 + np.exp(-(labels * 1.2 + rng.normal(0, 1, n))))
    if ties:
        scores = np.round(scores, 1)
    patients = rng.integers(0, n // 3, n)
    return labels, scores, patients


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_aurocs_agree_with_scikit_learn_for_every_run_and_resample(ties):
    labels, _, patients = predictions(ties=ties)
    rng = np.random.default_rng(3)
    scores = rng.random((3, len(labels)))
    if ties:
        scores = np.round(scores, 1)  # many ties
    _, patient_of_image = np.unique(patients, return_inverse=True)
    draws = patient_draws(patient_of_image.max() + 1, 600, seed=1)
    assert [len(block) for block in draws] == [250, 250, 100]
    ours = weighted_aurocs(labels, scores, patient_of_image, draws)
    counts = np.vstack(draws).astype(np.float64)[:, patient_of_image]
    for run, run_scores in enumerate(scores):
        for resample in range(0, 600, 37):
            assert ours[run, resample] == pytest.approx(roc_auc_score(
                labels, run_scores, sample_weight=counts[resample]), abs=1e-12)
    plain = weighted_aurocs(labels, scores, patient_of_image,
                            [np.ones((1, counts.shape[1]), np.uint8)])
    np.testing.assert_allclose(plain[:, 0], [roc_auc_score(labels, s) for s in scores],
                               rtol=1e-12)


def test_threshold_metrics_agree_with_scikit_learn():
    labels, scores, _ = predictions()
    for threshold in (0.3, 0.5, 0.7):
        predicted = (scores >= threshold).astype(int)
        ours = threshold_metrics(labels, scores, threshold)
        assert ours["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
        assert ours["sensitivity"] == pytest.approx(recall_score(labels, predicted))
        assert ours["specificity"] == pytest.approx(recall_score(1 - labels, 1 - predicted))
        assert ours["f1"] == pytest.approx(f1_score(labels, predicted))


def test_bootstrap_interval_covers_the_estimate_and_narrows_with_data():
    labels, scores, patients = predictions(n=300)
    low, high = bootstrap_auroc_interval(labels, scores, patients, samples=500, seed=3)
    assert low < roc_auc_score(labels, scores) < high
    big = predictions(n=3000)
    low_big, high_big = bootstrap_auroc_interval(*big, samples=500, seed=3)
    assert high_big - low_big < high - low
    again = bootstrap_auroc_interval(labels, scores, patients, samples=500, seed=3)
    assert again == (low, high), "the interval is reproducible for a seed"


def test_bootstrap_resamples_patients_not_images():
    # Every patient has 10 identical images: resampling images would fake a narrow interval.
    labels, scores, _ = predictions(n=40, seed=2)
    repeated = (np.repeat(labels, 10), np.repeat(scores, 10), np.repeat(np.arange(40), 10))
    by_patient = bootstrap_auroc_interval(*repeated, samples=400, seed=1)
    by_image = bootstrap_auroc_interval(*repeated[:2], np.arange(400), samples=400, seed=1)
    assert by_patient[1] - by_patient[0] > 2 * (by_image[1] - by_image[0])


def test_youden_threshold_and_summary():
    labels, scores, patients = predictions()
    threshold = youden_threshold(labels, scores)
    assert 0 < threshold < 1
    result = summarize_predictions(labels, scores, patients, labels, scores, samples=200)
    assert result["auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert result["auroc_ci_low"] <= result["auroc"] <= result["auroc_ci_high"]
    assert result["val_threshold"] == threshold
    assert {"accuracy", "sensitivity", "specificity", "f1"} <= result.keys()


def test_epochs_to_target():
    assert epochs_to_target([0.5, 0.6, 0.72, 0.7], 0.7) == 3
    assert epochs_to_target([0.5, 0.6], 0.7) is None
    assert epochs_to_target([0.5], None) is None
