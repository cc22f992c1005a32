"""The report's numbers beyond the AUROC: per target and arch x policy the AUPRC with its
interval, the Brier score and the expected calibration error; for the multi-label target the
same per label, with each label's AUROC, beside the published AUROCs.

Like Table 5's AUROC they come from the runs' test predictions: means over seeds, AUROC and
AUPRC with intervals over seeds and test patients (`report_statistics.mean_over_seeds`, on the
patient resamples `report_statistics.resampled` draws for the target). A multi-label run's number
in the per-target table is the mean over its labels whose test images hold both classes.
"""

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss

from workflow_scripts.labels import MULTILABEL
from workflow_scripts.metrics import expected_calibration_error, label_mean
from workflow_scripts.report_published import published_frame, published_keys
from workflow_scripts.report_runs import ordered
from workflow_scripts.report_statistics import mean_over_seeds, same_schedule, seed_sd

CALIBRATION_COLUMNS = ["target", "arch", "policy", "same_schedule_as", "seeds",
                       "test_prevalence", "auroc", "auroc_ci_low", "auroc_ci_high", "auprc",
                       "auprc_sd", "auprc_ci_low", "auprc_ci_high", "brier", "brier_sd", "ece",
                       "ece_sd"]
PER_LABEL_COLUMNS = ["target", "arch", "policy", "label", "seeds", "test_positives", "auroc",
                     "auroc_ci_low", "auroc_ci_high", "auprc", "auprc_ci_low",
                     "auprc_ci_high", "brier", "ece"]


def calibration_scores(target_runs):
    """Brier score and ECE of every scored label and run: two arrays labels x runs."""
    labels, scores = target_runs.test_labels, target_runs.scores
    brier = np.array([[brier_score_loss(labels[:, i], run[:, i]) for run in scores]
                      for i in target_runs.scored])
    ece = np.array([[expected_calibration_error(labels[:, i], run[:, i]) for run in scores]
                    for i in target_runs.scored])
    return brier, ece


def seed_rows(target_runs):
    """(arch, policy) -> positions of its runs (seeds) in `target_runs.runs`."""
    runs = target_runs.runs
    return {key: list(group.index) for key, group in runs.groupby(["arch", "policy"],
                                                                  sort=False)}


def beyond_auroc_tables(target_runs, auroc, aurocs, auprcs, level, grid):
    """{"auprc_calibration": per arch x policy, "per_label_results": per arch x policy x label
    (multi-label target only, else empty)}. `auroc` is `report_statistics.auroc_statistics`'s
    first table; `aurocs` and `auprcs` are the runs' `report_statistics.resampled` values."""
    runs = target_runs.runs
    if runs.empty:
        return {"auprc_calibration": pd.DataFrame(columns=CALIBRATION_COLUMNS),
                "per_label_results": pd.DataFrame(columns=per_label_columns())}
    brier, ece = calibration_scores(target_runs)
    return {"auprc_calibration": calibration_table(target_runs, auroc, auprcs, brier, ece,
                                                   level, grid),
            "per_label_results": per_label_table(target_runs, aurocs, auprcs, brier, ece,
                                                 level, grid)}


def calibration_table(target_runs, auroc, auprcs, brier, ece, level, grid):
    """Per arch x policy: the mean over seeds of the AUPRC (with its spread and interval),
    the Brier score and the ECE, beside the AUROC and the share of positive test labels (the
    AUPRC of a ranking that knows nothing)."""
    labels = target_runs.test_labels[:, target_runs.scored]
    mean_auprcs = label_mean(auprcs)
    rows = []
    for (arch, policy), positions in seed_rows(target_runs).items():
        mean, low, high, _ = mean_over_seeds(mean_auprcs[positions], level, limits=(0.0, 1.0))
        brier_runs, ece_runs = brier[:, positions].mean(axis=0), ece[:, positions].mean(axis=0)
        rows.append({"arch": arch, "policy": policy, "seeds": len(positions),
                     "test_prevalence": float(labels.mean()), "auprc": mean,
                     "auprc_sd": seed_sd(mean_auprcs[positions, 0]), "auprc_ci_low": low,
                     "auprc_ci_high": high, "brier": float(brier_runs.mean()),
                     "brier_sd": seed_sd(brier_runs), "ece": float(ece_runs.mean()),
                     "ece_sd": seed_sd(ece_runs)})
    table = pd.DataFrame(rows).merge(auroc[["arch", "policy", "auroc", "auroc_ci_low",
                                            "auroc_ci_high"]], on=["arch", "policy"])
    table = table.merge(same_schedule(target_runs.runs).reset_index(), on=["arch", "policy"])
    table.insert(0, "target", target_runs.target)
    return ordered(table.reindex(columns=CALIBRATION_COLUMNS), grid)


def per_label_columns():
    return PER_LABEL_COLUMNS + [f"published_{key}" for key in published_keys()]


def per_label_table(target_runs, aurocs, auprcs, brier, ece, level, grid):
    """The multi-label target's numbers per arch x policy x label: test positives, AUROC and
    AUPRC (mean over seeds with interval), Brier score and ECE (means over seeds), and the
    published AUROCs of the label. Empty for a binary target (Tables 5 and the calibration
    table hold its one label)."""
    if target_runs.target != MULTILABEL:
        return pd.DataFrame(columns=per_label_columns())
    positives = target_runs.test_labels.sum(axis=0)
    rows = []
    for (arch, policy), positions in seed_rows(target_runs).items():
        for row, column in enumerate(target_runs.scored):
            auroc = mean_over_seeds(aurocs[row, positions], level, limits=(0.0, 1.0))
            auprc = mean_over_seeds(auprcs[row, positions], level, limits=(0.0, 1.0))
            rows.append({"arch": arch, "policy": policy,
                         "label": target_runs.labels[column], "seeds": len(positions),
                         "test_positives": int(positives[column]),
                         "auroc": auroc[0], "auroc_ci_low": auroc[1], "auroc_ci_high": auroc[2],
                         "auprc": auprc[0], "auprc_ci_low": auprc[1], "auprc_ci_high": auprc[2],
                         "brier": float(brier[row, positions].mean()),
                         "ece": float(ece[row, positions].mean())})
    table = pd.DataFrame(rows).merge(published_frame(), on="label", how="left")
    table.insert(0, "target", target_runs.target)
    return ordered(table.reindex(columns=per_label_columns()), grid)
