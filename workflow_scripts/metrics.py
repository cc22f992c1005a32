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


def weighted_auroc(labels, scores, weights):
    """AUROC for each row of `weights` (resamples x images): P(score_pos > score_neg), ties 1/2."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    positive = labels[order].astype(bool)
    weights = weights[:, order]
    # Tied scores form contiguous groups; `start`/`end` are each element's group bounds.
    new_group = np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]
    group = np.cumsum(new_group) - 1
    group_start = np.flatnonzero(new_group)
    group_end = np.r_[group_start[1:], len(scores)] - 1
    negative_weights = np.where(positive, 0.0, weights)
    cumulative = np.cumsum(negative_weights, axis=1)
    padded = np.concatenate([np.zeros((len(weights), 1)), cumulative], axis=1)
    below = padded[:, group_start[group]]
    tied = cumulative[:, group_end[group]] - below
    numerator = ((below + 0.5 * tied) * np.where(positive, weights, 0.0)).sum(axis=1)
    total_positive = np.where(positive, weights, 0.0).sum(axis=1)
    total_negative = negative_weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / (total_positive * total_negative)


def bootstrap_auroc_interval(labels, scores, patients, samples=1000, level=0.95, seed=0):
    """Percentile interval of the AUROC over `samples` patient-level bootstrap resamples."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    unique_patients, patient_of_image = np.unique(np.asarray(patients), return_inverse=True)
    rng = np.random.default_rng(seed)
    uniform = np.full(len(unique_patients), 1 / len(unique_patients))
    values = []
    for start in range(0, samples, BOOTSTRAP_BLOCK):
        block = min(BOOTSTRAP_BLOCK, samples - start)
        counts = rng.multinomial(len(unique_patients), uniform, size=block)
        values.append(weighted_auroc(labels, scores, counts[:, patient_of_image].astype(float)))
    values = np.concatenate(values)
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
    """The metrics.json numbers of one run (DESIGN.md contract), without the training facts."""
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
