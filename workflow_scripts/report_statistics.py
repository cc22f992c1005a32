"""Statistics across seeds: means with intervals, paired differences and their verdicts.

The seed is the unit of replication. A target's runs are all tested on the same test images
(the split is per target), so policies are compared pairwise, per seed, on the same images:
AUROC(policy, seed) - AUROC(baseline, seed). The mean over seeds (Table 5: of the AUROC;
Table 7: of the paired difference) gets a Student-t interval whose variance adds the
seed-to-seed variance over the number of seeds to the test set's sampling variance, the
latter from a bootstrap over test patients (`mean_over_seeds`). A percentile bootstrap over
five seeds covered 84% at a nominal 95%; this interval holds its level (the tests simulate
it). A paired difference takes the seeds' n - 1 degrees of freedom, never more (see
`paired_difference`). A difference is "beyond noise" when its p-value, adjusted for
multiplicity over every comparison of the target (`judge_differences`), is at most
1 - level; with fewer than MIN_SEEDS_TO_JUDGE seeds nothing is judged.
"""

import math
import zlib

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from workflow_scripts.metrics import (
    label_mean,
    patient_resamples,
    weighted_ranking_statistics,
)
from workflow_scripts.report_contents import MIN_SEEDS_TO_JUDGE


def mean_over_seeds(values, level, limits=(-1.0, 1.0), seeds_freedom_only=False):
    """The mean over seeds of a statistic with its interval, and the p-value of a zero mean.

    `values` has one row per seed: column 0 the statistic on the test set, the others on the
    patient resamples (the same resamples for every run). The variance of the seed mean is
    the seeds' variance over their number, s^2 / n, plus the test set's: the variance of the
    seed mean over the patient resamples. Interval and p-value follow Student's t with
    Welch-Satterthwaite's degrees of freedom: n - 1 where seeds dominate, growing without
    bound where the test set does; `seeds_freedom_only` keeps n - 1 (`paired_difference`).
    One seed gives the test set's part alone. The interval is clipped to the statistic's
    `limits` (an AUROC lies in [0, 1], a difference in [-1, 1]): two seeds give one degree of
    freedom and intervals wider than that.

    Returns (mean, interval low, interval high, p-value).
    """
    plain = values[:, 0]
    count = len(plain)
    mean = float(plain.mean())
    seed_part = float(plain.var(ddof=1)) / count if count > 1 else 0.0
    resampled = values[:, 1:].mean(axis=0)
    resampled = resampled[np.isfinite(resampled)]
    patient_part = float(resampled.var(ddof=1)) if len(resampled) > 1 else 0.0
    variance = seed_part + patient_part
    if not variance > 0:
        return mean, mean, mean, float(mean == 0) if math.isfinite(mean) else math.nan
    if seed_part == 0:
        freedom = math.inf
    elif seeds_freedom_only:
        freedom = count - 1
    else:
        freedom = variance ** 2 / (seed_part ** 2 / (count - 1))
    error = math.sqrt(variance)
    half_width = float(stats.t.ppf((1 + level) / 2, freedom)) * error
    p_value = float(2 * stats.t.sf(abs(mean) / error, freedom))
    low, high = np.clip([mean - half_width, mean + half_width], *limits)
    return mean, float(low), float(high), p_value


def paired_difference(values, level):
    """`mean_over_seeds` of per-seed differences (policy - baseline on the same test images),
    on the seeds' n - 1 degrees of freedom.

    On the same images the test set's part of a difference largely cancels, so the seeds'
    variance dominates, and Welch-Satterthwaite's degrees of freedom then grow exactly where
    that variance came out small by chance: with three seeds a true zero difference was
    called beyond noise in 6 to 8% of simulated comparisons at a nominal 5%. With n - 1 the
    test is a paired t-test whose variance also carries the test set's part: at or below its
    level (under 4%) at three seeds and at five (tests/test_significance.py simulates both).
    """
    return mean_over_seeds(values, level, seeds_freedom_only=True)


def seed_sd(values):
    """The standard deviation across seeds of a run's statistic; NaN with one seed."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def target_seed(target):
    """A fixed random seed per target, so a report is reproducible and targets independent."""
    return zlib.crc32(target.encode())


def auroc_statistics(target_runs, aurocs, baselines, level):
    """Per arch x policy: mean AUROC over seeds with its interval; and per baseline the mean
    paired difference with its interval and p-value (see `mean_over_seeds`), from the runs'
    `resampled` AUROCs. A multi-label run's AUROC is the mean over its labels (`label_mean`).

    Returns (auroc, differences): auroc has arch, policy, seeds, auroc (mean over seeds),
    auroc_sd (across seeds), auroc_ci_low, auroc_ci_high; differences has arch, policy,
    baseline, seeds, delta_auroc (mean over the seeds both have), ci_low, ci_high, p_value.
    """
    runs = target_runs.runs
    auroc_rows, difference_rows = [], []
    difference_columns = ["arch", "policy", "baseline", "seeds", "delta_auroc", "ci_low",
                          "ci_high", "p_value"]
    if runs.empty:
        return (pd.DataFrame(columns=["arch", "policy", "seeds", "auroc", "auroc_sd",
                                      "auroc_ci_low", "auroc_ci_high"]),
                pd.DataFrame(columns=difference_columns))
    values = label_mean(aurocs)
    row_of = {(r.arch, r.policy, r.seed): i for i, r in enumerate(runs.itertuples())}
    for (arch, policy), group in runs.groupby(["arch", "policy"], sort=False):
        rows = [row_of[(arch, policy, seed)] for seed in group["seed"]]
        mean, low, high, _ = mean_over_seeds(values[rows], level, limits=(0.0, 1.0))
        auroc_rows.append({"arch": arch, "policy": policy, "seeds": len(rows), "auroc": mean,
                           "auroc_sd": seed_sd(values[rows, 0]), "auroc_ci_low": low,
                           "auroc_ci_high": high})
        for baseline in baselines:
            seeds = [seed for seed in group["seed"] if (arch, baseline, seed) in row_of]
            if policy == baseline or not seeds:
                continue
            ours = [row_of[(arch, policy, seed)] for seed in seeds]
            theirs = [row_of[(arch, baseline, seed)] for seed in seeds]
            mean, low, high, p_value = paired_difference(values[ours] - values[theirs], level)
            difference_rows.append({"arch": arch, "policy": policy, "baseline": baseline,
                                    "seeds": len(seeds), "delta_auroc": mean, "ci_low": low,
                                    "ci_high": high, "p_value": p_value})
    return pd.DataFrame(auroc_rows), pd.DataFrame(difference_rows, columns=difference_columns)


def resampled(target_runs, samples):
    """AUROC and AUPRC of every run and scored label: two arrays labels x runs x (1 + samples).
    Column 0 counts every patient once (the plain statistic); then the patient resamples, the
    same for every run and label of the target (seeded by it)."""
    patient_of_image, draws = patient_resamples(target_runs.test["patient_id"], samples,
                                                target_seed(target_runs.target))
    draws = [np.ones((1, patient_of_image.max() + 1), np.uint8), *draws]
    labels = target_runs.test_labels
    per_label = [weighted_ranking_statistics(labels[:, i], target_runs.scores[:, :, i],
                                             patient_of_image, draws)
                 for i in target_runs.scored]
    return (np.stack([aurocs for aurocs, _ in per_label]),
            np.stack([auprcs for _, auprcs in per_label]))


def judge_differences(differences, method, level, twins=None):
    """`differences` with `p_adjusted` and `beyond_noise` columns: a multiplicity correction
    (statsmodels' `method`, e.g. fdr_bh or holm) over every comparison of the frame, and
    beyond noise where the adjusted p-value is at most 1 - level.

    Comparisons with fewer than MIN_SEEDS_TO_JUDGE seeds are not judged (NaN). A policy with a
    twin (`twins`: policy -> its twin, see `plan`) repeats its twin's comparisons: it is
    left out of the family and takes their adjusted p-value.
    """
    judged = differences.copy()
    judged["p_adjusted"] = math.nan
    judged["beyond_noise"] = pd.Series(pd.NA, index=judged.index, dtype="boolean")
    twins = twins or {}
    family = (judged["seeds"] >= MIN_SEEDS_TO_JUDGE) & judged["p_value"].notna() & ~judged[
        "policy"].isin(list(twins))
    if family.any():
        _, adjusted, _, _ = multipletests(judged.loc[family, "p_value"], alpha=1 - level,
                                          method=method)
        judged.loc[family, "p_adjusted"] = adjusted
    keys = ["arch", "baseline"] + (["target"] if "target" in judged.columns else [])
    for policy, twin in twins.items():
        for index in judged.index[judged["policy"] == policy]:
            match = (judged["policy"] == twin) & (
                judged[keys] == judged.loc[index, keys]).all(axis=1)
            if match.any():
                judged.loc[index, "p_adjusted"] = judged.loc[match, "p_adjusted"].iat[0]
    known = judged["p_adjusted"].notna()
    judged.loc[known, "beyond_noise"] = judged.loc[known, "p_adjusted"] <= 1 - level
    return judged


def with_difference_columns(table, differences, baseline):
    """`table` (one row per arch x policy) joined with the judged `differences` to
    `baseline`: delta_auroc_vs_<baseline> with its _ci_low and _ci_high, p_vs_<baseline>,
    p_adjusted_vs_<baseline> and beyond_noise_vs_<baseline> (empty where none)."""
    delta = differences[differences["baseline"] == baseline].rename(columns={
        "delta_auroc": f"delta_auroc_vs_{baseline}",
        "ci_low": f"delta_auroc_vs_{baseline}_ci_low",
        "ci_high": f"delta_auroc_vs_{baseline}_ci_high", "p_value": f"p_vs_{baseline}",
        "p_adjusted": f"p_adjusted_vs_{baseline}",
        "beyond_noise": f"beyond_noise_vs_{baseline}"}).drop(columns=["baseline", "seeds"])
    return table.merge(delta, on=["arch", "policy"], how="left")


def baseline_reach(histories, baselines):
    """Per run and baseline: when the run first matched the baseline's best validation accuracy.

    For each arch x seed, `best` is the baseline run's highest val_accuracy; a run of any
    policy with that arch and seed reaches it at the first epoch whose val_accuracy >= best
    (NaN: never), after `device_seconds` (its cumulative device time up to that epoch). The
    baseline itself reaches it at its best epoch. Columns: arch, policy, seed, baseline, best,
    epoch, device_seconds.
    """
    rows = []
    runs = {key: frame for key, frame in histories.groupby(["arch", "policy", "seed"], sort=False)}
    for (arch, policy, seed), history in runs.items():
        for baseline in baselines:
            reference = runs.get((arch, baseline, seed))
            if reference is None:
                continue
            best = float(reference["val_accuracy"].max())
            reached = np.flatnonzero(history["val_accuracy"].to_numpy() >= best)
            first = reached[0] if len(reached) else None
            rows.append({"arch": arch, "policy": policy, "seed": seed, "baseline": baseline,
                         "best": best,
                         "epoch": float(history["epoch"].iat[first]) if first is not None
                         else math.nan,
                         "device_seconds": float(history["device_seconds"].iat[first])
                         if first is not None else math.nan})
    return pd.DataFrame(rows, columns=["arch", "policy", "seed", "baseline", "best", "epoch",
                                       "device_seconds"])

def seed_summary(runs, columns):
    """Per arch x policy: the number of seeds, the mean over seeds of `columns`, the accuracy's
    standard deviation across seeds, and the policy whose runs it shares (`same_schedule`)."""
    grouped = runs.groupby(["arch", "policy"], sort=False)
    table = grouped[list(columns)].mean()
    table.insert(0, "seeds", grouped.size())
    table["accuracy_sd"] = grouped["accuracy"].std()
    return table.join(same_schedule(runs))


def same_schedule(runs):
    """Per arch x policy: its twin, whose runs it shares (same schedule), else None."""
    return runs.groupby(["arch", "policy"], sort=False)["twin_of"].first().rename(
        "same_schedule_as")
