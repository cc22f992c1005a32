import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    recall_score,
    roc_auc_score,
)

from workflow_scripts.metrics import (
    ECE_BINS,
    calibration_bins,
    epochs_to_target,
    expected_calibration_error,
    patient_draws,
    summarize_multilabel,
    summarize_predictions,
    threshold_metrics,
    weighted_ranking_statistics,
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
@pytest.mark.parametrize(("statistic", "oracle", "tolerance"),
                         [(0, roc_auc_score, 1e-12), (1, average_precision_score, 1e-9)],
                         ids=["auroc", "auprc"])
def test_weighted_ranking_statistics_agree_with_scikit_learn_for_every_run_and_resample(
        ties, statistic, oracle, tolerance):
    labels, _, patients = predictions(ties=ties)
    rng = np.random.default_rng(4)
    scores = rng.random((3, len(labels))) + 0.3 * labels
    if ties:
        scores = np.round(scores, 1)  # many ties
    _, patient_of_image = np.unique(patients, return_inverse=True)
    draws = patient_draws(patient_of_image.max() + 1, 600, seed=1)
    assert [len(block) for block in draws] == [250, 250, 100]
    ours = weighted_ranking_statistics(labels, scores, patient_of_image, draws)[statistic]
    counts = np.vstack(draws).astype(np.float64)[:, patient_of_image]
    for run, run_scores in enumerate(scores):
        for resample in range(0, 600, 37):
            assert ours[run, resample] == pytest.approx(
                oracle(labels, run_scores, sample_weight=counts[resample]), abs=tolerance)
    plain = weighted_ranking_statistics(labels, scores, patient_of_image,
                                        [np.ones((1, counts.shape[1]), np.uint8)])[statistic]
    np.testing.assert_allclose(plain[:, 0], [oracle(labels, s) for s in scores], rtol=1e-12)


def test_calibration_bins_and_ece_agree_with_scikit_learn():
    labels, scores, _ = predictions(n=500, seed=5)
    scores = np.r_[scores, 0.0, 0.1, 0.5, 0.9, 1.0]  # edges fall in the lower bin
    labels = np.r_[labels, 0, 1, 0, 1, 1]
    count, mean_score, positive_fraction = calibration_bins(labels, scores)
    theirs_true, theirs_score = calibration_curve(labels, scores, n_bins=ECE_BINS)
    filled = count > 0
    np.testing.assert_allclose(positive_fraction[filled], theirs_true, rtol=1e-12)
    np.testing.assert_allclose(mean_score[filled], theirs_score, rtol=1e-12)
    assert count.sum() == len(scores)
    # ECE written out bin by bin: (lower, upper], the first bin closed at 0.
    expected = 0.0
    for b in range(ECE_BINS):
        low, high = b / ECE_BINS, (b + 1) / ECE_BINS
        inside = (scores > low) & (scores <= high) if b else (scores <= high)
        if inside.any():
            expected += inside.mean() * abs(labels[inside].mean() - scores[inside].mean())
    assert expected_calibration_error(labels, scores) == pytest.approx(expected, abs=1e-12)
    perfect = np.repeat([0.25, 0.75], 4)
    assert expected_calibration_error([0, 0, 0, 1, 0, 1, 1, 1], perfect) == 0


def test_threshold_metrics_agree_with_scikit_learn():
    labels, scores, _ = predictions()
    for threshold in (0.3, 0.5, 0.7):
        predicted = (scores >= threshold).astype(int)
        ours = threshold_metrics(labels, scores, threshold)
        assert ours["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
        assert ours["sensitivity"] == pytest.approx(recall_score(labels, predicted))
        assert ours["specificity"] == pytest.approx(recall_score(1 - labels, 1 - predicted))
        assert ours["f1"] == pytest.approx(f1_score(labels, predicted))


def auroc_interval(labels, scores, patients, samples, seed):
    """The AUROC interval of a binary run's summary (validation: the test set itself)."""
    summary = summarize_predictions(labels, scores, patients, labels, scores, samples=samples,
                                    seed=seed)
    return summary["auroc_ci_low"], summary["auroc_ci_high"]


def test_bootstrap_interval_covers_the_estimate_and_narrows_with_data():
    labels, scores, patients = predictions(n=300)
    low, high = auroc_interval(labels, scores, patients, samples=500, seed=3)
    assert low < roc_auc_score(labels, scores) < high
    big = predictions(n=3000)
    low_big, high_big = auroc_interval(*big, samples=500, seed=3)
    assert high_big - low_big < high - low
    again = auroc_interval(labels, scores, patients, samples=500, seed=3)
    assert again == (low, high), "the interval is reproducible for a seed"


def test_bootstrap_resamples_patients_not_images():
    # Every patient has 10 identical images: resampling images would fake a narrow interval.
    labels, scores, _ = predictions(n=40, seed=2)
    repeated = (np.repeat(labels, 10), np.repeat(scores, 10), np.repeat(np.arange(40), 10))
    by_patient = auroc_interval(*repeated, samples=400, seed=1)
    by_image = auroc_interval(*repeated[:2], np.arange(400), samples=400, seed=1)
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
    assert result["auprc"] == pytest.approx(average_precision_score(labels, scores))
    assert result["auprc_ci_low"] <= result["auprc"] <= result["auprc_ci_high"]
    assert result["brier"] == pytest.approx(brier_score_loss(labels, scores))
    assert result["ece"] == expected_calibration_error(labels, scores)


def test_per_label_metrics_of_a_multilabel_run_equal_scikit_learns():
    rng = np.random.default_rng(6)
    n, names = 600, ("Atelectasis", "Effusion", "Hernia", "Mass")
    labels = (rng.random((n, 4)) < [0.3, 0.2, 0.0, 0.05]).astype(int)
    scores = 1 / (1 + np.exp(-(1.5 * labels + rng.normal(0, 1, (n, 4)) - 1)))
    patients = rng.integers(0, 200, n)
    val_labels = (rng.random((200, 4)) < 0.3).astype(int)
    val_scores = rng.random((200, 4))
    result = summarize_multilabel(names, labels, scores, patients, val_labels, val_scores,
                                  samples=300, seed=1)
    scored = ["Atelectasis", "Effusion", "Mass"]
    assert result["labels_scored"] == scored and result["labels_left_out"] == ["Hernia"]
    assert result["per_label"]["Hernia"] == {"n_test_positives": 0}
    for name in scored:
        column = names.index(name)
        ours = result["per_label"][name]
        assert ours["auroc"] == pytest.approx(roc_auc_score(labels[:, column],
                                                            scores[:, column]))
        assert ours["auprc"] == pytest.approx(average_precision_score(labels[:, column],
                                                                      scores[:, column]))
        assert ours["brier"] == pytest.approx(brier_score_loss(labels[:, column],
                                                               scores[:, column]))
        assert ours["accuracy"] == pytest.approx(accuracy_score(
            labels[:, column], scores[:, column] >= 0.5))
        assert ours["auroc_ci_low"] <= ours["auroc"] <= ours["auroc_ci_high"]
        # Each label's numbers are a binary run's, with the same patient resamples.
        binary = summarize_predictions(labels[:, column], scores[:, column], patients,
                                       val_labels[:, column], val_scores[:, column],
                                       samples=300, seed=1)
        assert ours == {key: binary[key] for key in ours}
    for key in ("auroc", "auprc", "brier", "ece", "accuracy", "f1"):
        assert result[key] == pytest.approx(np.mean([result["per_label"][name][key]
                                                     for name in scored]))
    assert result["auroc_ci_low"] < result["auroc"] < result["auroc_ci_high"]
    assert result["auprc_ci_low"] < result["auprc"] < result["auprc_ci_high"]
    assert result["n_test_positives"] == int(labels.any(axis=1).sum())


def test_epochs_to_target():
    assert epochs_to_target([0.5, 0.6, 0.72, 0.7], 0.7) == 3
    assert epochs_to_target([0.5, 0.6], 0.7) is None
    assert epochs_to_target([0.5], None) is None
