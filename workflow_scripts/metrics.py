"""Test-set metrics of one run: AUROC and AUPRC with a patient-level bootstrap interval,
calibration (Brier score and expected calibration error), and the threshold metrics
(accuracy, sensitivity, specificity, F1) at 0.5 and at a threshold chosen on the validation
split. A multi-label run gets these per label, and their mean over labels.

Images of one patient are correlated, so the bootstrap resamples patients, not images: each
resample draws patients with replacement and weights every image by its patient's count.
The weighted AUROC and AUPRC of all resamples are computed at once from one sort of the
scores.

AUPRC is scikit-learn's average precision, sum over thresholds of (R_n - R_n-1) P_n. The
expected calibration error is sum over bins of (images in the bin / images) x |fraction of
positives - mean score|, over ECE_BINS bins of equal width on [0, 1], binned as
scikit-learn's calibration_curve (strategy 'uniform': a score on an edge falls in the lower
bin).
"""

import warnings

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    roc_auc_score,
    roc_curve,
)

BOOTSTRAP_BLOCK = 250  # resamples evaluated together; bounds memory at block x images
ECE_BINS = 10


def threshold_metrics(labels, scores, threshold=0.5):
    """Accuracy, sensitivity, specificity and F1 of `scores >= threshold`."""
    predicted = (np.asarray(scores) >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(np.asarray(labels).astype(int), predicted,
                                      labels=[0, 1]).ravel()
    return {
        "accuracy": float((tp + tn) / max(tp + tn + fp + fn, 1)),
        "sensitivity": float(tp / max(tp + fn, 1)),
        "specificity": float(tn / max(tn + fp, 1)),
        "f1": float(2 * tp / max(2 * tp + fp + fn, 1)),
    }


def youden_threshold(labels, scores):
    """The score threshold maximizing sensitivity + specificity - 1 (Youden's J)."""
    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))


def patient_draws(n_patients, samples, seed):
    """Bootstrap resamples of the test patients, in blocks of at most BOOTSTRAP_BLOCK rows:
    row b holds how often resample b drew each patient (n_patients draws with replacement).

    The counts are stored in the smallest unsigned integer type that holds them (uint8 in
    practice): the AUROC arithmetic is bound by memory traffic, not by arithmetic.
    """
    rng = np.random.default_rng(seed)
    uniform = np.full(n_patients, 1 / n_patients)
    blocks = [rng.multinomial(n_patients, uniform, size=min(BOOTSTRAP_BLOCK, samples - start))
              for start in range(0, samples, BOOTSTRAP_BLOCK)]
    return [block.astype(np.min_scalar_type(block.max())) for block in blocks]


def weighted_ranking_statistics(labels, scores, patient_of_image, draws):
    """(AUROC, AUPRC) of every run (rows of `scores`) under every resample (rows of the
    `draws` blocks): two arrays runs x resamples.

    An image weighs as much as its patient's draw count. The weighted AUROC is
    P(score_pos > score_neg) + P(tie) / 2 over weighted pairs (scikit-learn's with sample
    weights; the tests compare), computed from the cumulative negative weight below each
    positive image alone, one sort per run for all resamples: a report over thousands of runs
    needs that speed. The cumulative negative weights are float32, exact for whole and half
    numbers below 2**24; sums over images are float64.

    The AUPRC is scikit-learn's average precision with sample weights (the tests compare):
    over the distinct scores that hold a positive image, highest first, the sum of (TP_n -
    TP_n-1) / TP_total x precision_n, precision = TP / (TP + FP) counting everything scored
    at least as high; from the same sort and cumulative negative weights, and the positives'
    cumulative weights (whole counts, summed as integers). A resample without a positive
    image gives NaN.
    """
    labels = np.asarray(labels).astype(bool)
    resamples = sum(len(block) for block in draws)
    aurocs = np.empty((len(scores), resamples))
    auprcs = np.empty((len(scores), resamples))
    for row, run_scores in enumerate(scores):
        order = np.argsort(run_scores, kind="stable")
        positive = labels[order]
        sorted_scores = run_scores[order]
        negative_scores = sorted_scores[~positive]
        positive_scores = sorted_scores[positive]
        below = np.searchsorted(negative_scores, positive_scores, "left")
        up_to = np.searchsorted(negative_scores, positive_scores, "right")
        positive_patients = patient_of_image[order][positive]
        negative_patients = patient_of_image[order][~positive]
        # The AUPRC's thresholds: each run of equal positive scores, from its first positive
        # to the first of the next run.
        group_start = np.flatnonzero(np.r_[True, np.diff(positive_scores) != 0])
        group_end = np.r_[group_start[1:], len(positive_scores)]
        column = 0
        for counts in draws:
            block = slice(column, column + len(counts))
            positive_weights = np.take(counts, positive_patients, axis=1)
            cumulative = np.zeros((len(counts), len(negative_patients) + 1), np.float32)
            np.cumsum(np.take(counts, negative_patients, axis=1), axis=1, dtype=np.float32,
                      out=cumulative[:, 1:])
            pairs = np.take(cumulative, below, axis=1)
            if not np.array_equal(below, up_to):  # tied scores count one half
                pairs += np.take(cumulative, up_to, axis=1)
                pairs *= 0.5
            pairs *= positive_weights
            with np.errstate(invalid="ignore", divide="ignore"):
                aurocs[row, block] = pairs.sum(axis=1, dtype=np.float64) / (
                    positive_weights.sum(axis=1, dtype=np.float64) * cumulative[:, -1])
            auprcs[row, block] = average_precisions(positive_weights, cumulative,
                                                    below[group_start], group_start, group_end)
            column += len(counts)
    return aurocs, auprcs


def average_precisions(positive_weights, negatives, negatives_below, group_start, group_end):
    """The AUPRC of one run under a block of resamples, from the positives' weights (resamples
    x positives, in ascending score), the negatives' cumulative weights (resamples x
    negatives + 1, ascending) and per run of equal positive scores the negatives below it and
    its first and past-last positive."""
    positives = np.zeros((len(positive_weights), positive_weights.shape[1] + 1), np.int32)
    np.cumsum(positive_weights, axis=1, dtype=np.int32, out=positives[:, 1:])
    true_positives = (positives[:, -1:] - positives[:, group_start]).astype(np.float64)
    gained = positives[:, group_end] - positives[:, group_start]
    precision = negatives[:, -1:] - negatives[:, negatives_below] + true_positives
    # Weights are whole counts: nothing at or above a score means no true positive either.
    np.maximum(precision, 1.0, out=precision)
    np.divide(true_positives, precision, out=precision)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("ij,ij->i", gained, precision) / positives[:, -1]


def patient_resamples(patients, samples, seed):
    """(patient number of each image, the resamples' draw-count blocks) for `patients`."""
    _, patient_of_image = np.unique(np.asarray(patients), return_inverse=True)
    return patient_of_image, patient_draws(patient_of_image.max() + 1, samples, seed)


def percentile_interval(values, level):
    """The central `level` interval of bootstrap `values` (NaNs left out)."""
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def label_mean(values):
    """The mean over labels (axis 0) of per-label values under the patient resamples; a label
    undefined in a resample (no positive image drawn) is left out of that resample's mean."""
    if len(values) == 1:
        return values[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # resamples with no label defined
        return np.nanmean(values, axis=0)


def calibration_bins(labels, scores):
    """Per bin of ECE_BINS of equal width on [0, 1]: images, mean score and fraction of
    positives (NaN in an empty bin), binned as scikit-learn's calibration_curve with strategy
    'uniform'."""
    scores = np.asarray(scores, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    bin_of = np.searchsorted(edges[1:-1], scores)
    count = np.bincount(bin_of, minlength=ECE_BINS)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.bincount(bin_of, weights=scores, minlength=ECE_BINS) / count
        positive_fraction = np.bincount(bin_of, weights=np.asarray(labels, dtype=np.float64),
                                        minlength=ECE_BINS) / count
    return count, mean_score, positive_fraction


def expected_calibration_error(labels, scores):
    """Sum over `calibration_bins` of (images in bin / images) x |positives - mean score|."""
    count, mean_score, positive_fraction = calibration_bins(labels, scores)
    filled = count > 0
    return float(np.sum(count[filled] / count.sum()
                        * np.abs(positive_fraction[filled] - mean_score[filled])))


def epochs_to_target(accuracies, target):
    """1-based epoch at which `accuracies` (one per epoch) first reach `target`; None if never."""
    if target is None:
        return None
    reached = np.flatnonzero(np.asarray(accuracies) >= target)
    return int(reached[0] + 1) if len(reached) else None


def label_summary(test_labels, test_scores, patient_of_image, draws, val_labels, val_scores,
                  level):
    """The test numbers of one label: (summary, AUROC and AUPRC under every resample).

    The threshold chosen on validation is 0.5 where the validation split lacks a class."""
    test_labels = np.asarray(test_labels).astype(int)
    test_scores = np.asarray(test_scores, dtype=np.float64)
    aurocs, auprcs = (values[0] for values in weighted_ranking_statistics(
        test_labels, test_scores[None], patient_of_image, draws))
    threshold = (youden_threshold(val_labels, val_scores)
                 if len(np.unique(np.asarray(val_labels))) == 2 else 0.5)
    auroc_low, auroc_high = percentile_interval(aurocs, level)
    auprc_low, auprc_high = percentile_interval(auprcs, level)
    summary = {
        **threshold_metrics(test_labels, test_scores, 0.5),
        "auroc": float(roc_auc_score(test_labels, test_scores)),
        "auroc_ci_low": auroc_low,
        "auroc_ci_high": auroc_high,
        "auprc": float(average_precision_score(test_labels, test_scores)),
        "auprc_ci_low": auprc_low,
        "auprc_ci_high": auprc_high,
        "brier": float(brier_score_loss(test_labels, test_scores)),
        "ece": expected_calibration_error(test_labels, test_scores),
        "val_threshold": threshold,
        "at_val_threshold": threshold_metrics(test_labels, test_scores, threshold),
        "n_test_positives": int(test_labels.sum()),
    }
    return summary, aurocs, auprcs


def summarize_predictions(test_labels, test_scores, test_patients, val_labels, val_scores,
                          samples=1000, level=0.95, seed=0):
    """The test-set numbers of one binary run's metrics.json (README "Outputs"), without the
    training facts."""
    patient_of_image, draws = patient_resamples(test_patients, samples, seed)
    summary, _, _ = label_summary(test_labels, test_scores, patient_of_image, draws,
                                  val_labels, val_scores, level)
    return {**summary, "ci_level": level, "ece_bins": ECE_BINS,
            "n_test": int(len(test_labels)),
            "n_test_patients": int(len(np.unique(test_patients)))}


MEAN_OVER_LABELS = ("accuracy", "sensitivity", "specificity", "f1", "brier", "ece")


def summarize_multilabel(names, test_labels, test_scores, test_patients, val_labels,
                         val_scores, samples=1000, level=0.95, seed=0):
    """The test-set numbers of one multi-label run: `per_label` (name -> the numbers of a
    binary run), and at the top level their mean over the labels whose test images hold both
    classes (`labels_scored`; the others, whose AUROC is undefined, in `labels_left_out`).

    The intervals of the mean AUROC and AUPRC are percentiles of the mean over labels under
    each resample (the same patient resamples for every label; a label without a positive
    image in a resample is left out of that resample's mean). Columns of the label arrays
    follow `names`."""
    test_labels = np.asarray(test_labels).astype(int)
    patient_of_image, draws = patient_resamples(test_patients, samples, seed)
    per_label, aurocs, auprcs, scored = {}, [], [], []
    for column, name in enumerate(names):
        positives = int(test_labels[:, column].sum())
        if positives in (0, len(test_labels)):
            per_label[name] = {"n_test_positives": positives}
            continue
        summary, label_aurocs, label_auprcs = label_summary(
            test_labels[:, column], test_scores[:, column], patient_of_image, draws,
            val_labels[:, column], val_scores[:, column], level)
        per_label[name] = summary
        aurocs.append(label_aurocs)
        auprcs.append(label_auprcs)
        scored.append(name)
    if not scored:
        raise ValueError("no label has positive and negative test images")
    auroc_low, auroc_high = percentile_interval(label_mean(aurocs), level)
    auprc_low, auprc_high = percentile_interval(label_mean(auprcs), level)

    def mean(key, summaries):
        return float(np.mean([summary[key] for summary in summaries]))

    summaries = [per_label[name] for name in scored]
    at_val = [summary["at_val_threshold"] for summary in summaries]
    return {
        **{key: mean(key, summaries) for key in MEAN_OVER_LABELS},
        "auroc": mean("auroc", summaries), "auroc_ci_low": auroc_low,
        "auroc_ci_high": auroc_high,
        "auprc": mean("auprc", summaries), "auprc_ci_low": auprc_low,
        "auprc_ci_high": auprc_high,
        "ci_level": level, "ece_bins": ECE_BINS,
        "val_threshold": None,
        "at_val_threshold": {key: mean(key, at_val) for key in MEAN_OVER_LABELS[:4]},
        "n_test": int(len(test_labels)),
        "n_test_positives": int(test_labels.any(axis=1).sum()),
        "n_test_patients": int(len(np.unique(test_patients))),
        "labels_scored": scored,
        "labels_left_out": [name for name in names if name not in scored],
        "per_label": per_label,
    }
