"""Test-set metrics of one run: AUROC with a patient-level bootstrap interval, and the
threshold metrics (accuracy, sensitivity, specificity, F1) at 0.5 and at a threshold chosen
on the validation split.

Images of one patient are correlated, so the bootstrap resamples patients, not images: each
resample draws patients with replacement and weights every image by its patient's count.
The weighted AUROC of all resamples is computed at once from one sort of the scores.
"""

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

BOOTSTRAP_BLOCK = 250  # resamples evaluated together; bounds memory at block x images


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


def weighted_aurocs(labels, scores, patient_of_image, draws):
    """AUROC of every run (rows of `scores`) under every resample (rows of the `draws` blocks).

    An image weighs as much as its patient's draw count. The weighted AUROC is
    P(score_pos > score_neg) + P(tie) / 2 over weighted pairs (scikit-learn's with sample
    weights; the tests compare), computed from the cumulative negative weight below each
    positive image alone, one sort per run for all resamples: a report over thousands of runs
    needs that speed. The cumulative weights are float32, exact for whole and half numbers
    below 2**24; sums over images are float64. Returns an array runs x resamples.
    """
    labels = np.asarray(labels).astype(bool)
    values = np.empty((len(scores), sum(len(block) for block in draws)))
    for row, run_scores in enumerate(scores):
        order = np.argsort(run_scores, kind="stable")
        positive = labels[order]
        sorted_scores = run_scores[order]
        negative_scores = sorted_scores[~positive]
        below = np.searchsorted(negative_scores, sorted_scores[positive], "left")
        up_to = np.searchsorted(negative_scores, sorted_scores[positive], "right")
        positive_patients = patient_of_image[order][positive]
        negative_patients = patient_of_image[order][~positive]
        column = 0
        for counts in draws:
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
                values[row, column:column + len(counts)] = pairs.sum(axis=1, dtype=np.float64) / (
                    positive_weights.sum(axis=1, dtype=np.float64) * cumulative[:, -1])
            column += len(counts)
    return values


def bootstrap_auroc_interval(labels, scores, patients, samples=1000, level=0.95, seed=0):
    """Percentile interval of the AUROC over `samples` patient-level bootstrap resamples."""
    _, patient_of_image = np.unique(np.asarray(patients), return_inverse=True)
    draws = patient_draws(patient_of_image.max() + 1, samples, seed)
    values = weighted_aurocs(labels, np.asarray(scores, dtype=np.float64)[None],
                             patient_of_image, draws)[0]
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def epochs_to_target(accuracies, target):
    """1-based epoch at which `accuracies` (one per epoch) first reach `target`; None if never."""
    if target is None:
        return None
    reached = np.flatnonzero(np.asarray(accuracies) >= target)
    return int(reached[0] + 1) if len(reached) else None


def summarize_predictions(test_labels, test_scores, test_patients, val_labels, val_scores,
                 samples=1000, level=0.95, seed=0):
    """The test-set numbers of one run's metrics.json (README "Outputs"), without the
    training facts."""
    auroc = float(roc_auc_score(test_labels, test_scores))
    low, high = bootstrap_auroc_interval(test_labels, test_scores, test_patients, samples,
                                         level, seed)
    threshold = youden_threshold(val_labels, val_scores)
    return {
        **threshold_metrics(test_labels, test_scores, 0.5),
        "auroc": auroc,
        "auroc_ci_low": low,
        "auroc_ci_high": high,
        "ci_level": level,
        "val_threshold": threshold,
        "at_val_threshold": threshold_metrics(test_labels, test_scores, threshold),
        "n_test": int(len(test_labels)),
        "n_test_positives": int(np.sum(test_labels)),
        "n_test_patients": int(len(np.unique(test_patients))),
    }
