"""The comparison report's numbers: run outputs read and checked, and the paper's Tables 1-8.

Every table is a DataFrame with one row per label, target, or target x architecture x policy,
written as CSV and shown in the HTML report; a `paper_*` column holds the published number
(workflow_scripts/paper_numbers.yaml) wherever the paper gives one, beside ours.

Statistics across seeds: the seed is the unit of replication. A target's runs are all tested
on the same test images (the split is per target), so policies are compared pairwise, per
seed, on the same images: AUROC(policy, seed) - AUROC(baseline, seed). The mean over seeds
(Table 5: of the AUROC; Table 7: of the paired difference) gets a Student-t interval whose
variance adds the seed-to-seed variance over the number of seeds to the test set's sampling
variance, the latter from a bootstrap over test patients (`mean_over_seeds`). A percentile
bootstrap over five seeds covered 84% at a nominal 95%; this interval holds its level (the
tests simulate it). A difference is "beyond noise" when its p-value, adjusted for
multiplicity over every comparison of the target (`judge_differences`), is at most 1 - level;
with fewer than MIN_SEEDS_TO_JUDGE seeds nothing is judged.
"""

import math
import zlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats
from statsmodels.stats.multitest import multipletests

from workflow_scripts.labels import ANY_DISEASE, MULTILABEL, NO_FINDING, label_columns
from workflow_scripts.metrics import (
    label_mean,
    patient_resamples,
    weighted_ranking_statistics,
)
from workflow_scripts.policies import extra_parameters, lr_bounds
from workflow_scripts.report_contents import MIN_SEEDS_TO_JUDGE
from workflow_scripts.runs import (
    FILES,
    HISTORY_COLUMNS,
    METRIC_NUMBERS,
    SETTING_KEYS,
    read_history,
    read_lr,
    read_metrics,
    read_predictions,
    score_column,
)
from workflow_scripts.stage import InputError

LR_POINTS = 2000  # learning rates kept per run for the schedule figure
PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")


@dataclass(frozen=True)
class Grid:
    """The configured runs: every target x architecture x policy x seed, where a policy
    that gives another's schedule at every step shares that policy's runs (`shared`: target
    -> {policy: the policy whose runs it shares}) and has none of its own."""

    targets: tuple
    architectures: tuple
    policies: tuple
    seeds: tuple
    shared: dict = field(default_factory=dict)

    def shared_runs(self, target):
        return self.shared.get(target, {})

    def run_keys(self, target):
        """The trained runs of `target`: (target, arch, policy, seed), shared policies left
        out."""
        return [(target, arch, policy, int(seed))
                for arch in self.architectures for policy in self.policies
                if policy not in self.shared_runs(target) for seed in self.seeds]


def missing_runs(found, grid, target):
    """The trained runs of `target` in `grid` that are not among `found` (keys target, arch,
    policy, seed): left out of the report with report.allow_missing."""
    return pd.DataFrame([key for key in grid.run_keys(target) if key not in found],
                        columns=["target", "arch", "policy", "seed"])


def thinned(arrays):
    """Every k-th row (and the last) of per-step arrays, at most about LR_POINTS rows: the
    schedule figure cannot show more, and a long run has tens of thousands of steps."""
    length = len(arrays["step"])
    keep = np.unique(np.r_[np.arange(0, length, max(1, length // LR_POINTS)), length - 1])
    return {column: values[keep] for column, values in arrays.items()}


# --- every run of one target ---------------------------------------------------------------

@dataclass
class TargetRuns:
    """The finished runs of one target, read and checked.

    `runs` has one row per run (arch, policy, seed, the metrics.json numbers, device, optimizer,
    momentum, batch_size, steps_per_epoch, schedule as a dict, folder); `histories` one row per
    run and epoch, with `device_seconds` accumulated over epochs; `learning_rates` the LR
    (arch, policy, step, lr) of one seed per arch x policy, at up to LR_POINTS steps spread
    evenly over the run; `test` the target's test images (image_index, patient_id and its
    label columns, `labels.label_columns`) and `scores` their predicted scores, runs (in the
    order of `runs`) x images x label columns.
    """

    target: str
    runs: pd.DataFrame
    histories: pd.DataFrame
    learning_rates: pd.DataFrame
    test: pd.DataFrame
    scores: np.ndarray

    @property
    def labels(self):
        """The label columns: one per output of the target's model."""
        return label_columns(self.target)

    @property
    def test_labels(self):
        """The test images' labels: images x label columns."""
        return self.test[list(self.labels)].to_numpy()

    @property
    def scored(self):
        """The label columns whose test images hold both classes (an AUROC is defined)."""
        positives = self.test_labels.sum(axis=0)
        return [i for i, count in enumerate(positives) if 0 < count < len(self.test)]


def aligned_scores(predictions, reference, path, reference_path, target):
    """The scores of `predictions` in the image order of `reference` (both Arrow tables of
    `target`'s predictions), images x label columns; InputError if their images or labels
    differ."""
    if predictions.column("image_index").equals(reference.column("image_index")):
        order = np.arange(predictions.num_rows)
    else:
        order = pd.Index(predictions.column("image_index").to_numpy()).get_indexer(
            reference.column("image_index").to_numpy())
    columns = label_columns(target)
    if (predictions.num_rows != reference.num_rows or (order < 0).any()
            or not all(np.array_equal(predictions.column(c).to_numpy()[order],
                                      reference.column(c).to_numpy()) for c in columns)):
        raise InputError(f"{path} and {reference_path} hold different test images or labels, "
                         "but all runs of a target are tested on its one split. The split "
                         "changed after some runs finished: rerun the older runs.")
    return np.column_stack([predictions.column(score_column(c)).to_numpy().astype(np.float64)
                            for c in columns])[order]


def load_target_runs(run_folders, target, grid):
    """The runs of `target` in `run_folders` (the report's inputs), in the grid's order; a
    policy that shares another's runs appears with copies of them (`shared_run_of` names the
    policy whose runs they are). Returns (TargetRuns, the keys of the runs found)."""
    by_key = {}
    for folder in map(Path, run_folders):
        metrics = read_metrics(folder / FILES["metrics"])
        settings = metrics["settings"]
        by_key[(settings["target"], settings["arch"], settings["policy"],
                int(settings["seed"]))] = folder, metrics
    rows, histories, learning_rates, scores = [], [], [], []
    reference = reference_path = None
    with_learning_rates = set()  # arch x policy: one seed's learning rates feed the figure
    sharing = grid.shared_runs(target)
    for key in grid.run_keys(target):
        if key not in by_key:
            continue
        _, arch, trained, seed = key
        folder, metrics = by_key[key]
        history = read_history(folder / FILES["history"])
        predictions = read_predictions(folder / FILES["predictions"], target)
        if reference is None:
            reference, reference_path = predictions, folder / FILES["predictions"]
        run_scores = aligned_scores(predictions, reference, folder / FILES["predictions"],
                                    reference_path, target)
        settings = metrics["settings"]
        history["device_seconds"] = np.cumsum(history["seconds"]) * max(metrics["gpus"], 1)
        for policy in [trained, *(p for p, twin in sharing.items() if twin == trained)]:
            key = {"arch": arch, "policy": policy, "seed": seed}
            scores.append(run_scores)
            rows.append({**key, **{name: metrics[name] for name in METRIC_NUMBERS},
                         "device": metrics["device"],
                         **{name: settings[name] for name in SETTING_KEYS},
                         "folder": str(folder),
                         "shared_run_of": trained if policy != trained else None})
            histories.append((key, history))
            if (arch, policy) not in with_learning_rates:
                with_learning_rates.add((arch, policy))
                learning_rates.append((key, thinned(read_lr(folder / FILES["lr"]))))
    key_columns = ["arch", "policy", "seed"]
    runs = pd.DataFrame(rows, columns=[*key_columns, *METRIC_NUMBERS, "device", *SETTING_KEYS,
                                       "folder", "shared_run_of"])
    test_columns = ["image_index", "patient_id", *label_columns(target)]
    test = (reference.select(test_columns).to_pandas() if reference is not None
            else pd.DataFrame(columns=test_columns))
    return TargetRuns(
        target=target, runs=runs,
        histories=stacked(histories, [*key_columns, *HISTORY_COLUMNS, "device_seconds"]),
        learning_rates=stacked(learning_rates, [*key_columns, "step", "lr"]),
        test=test, scores=np.stack(scores) if scores
        else np.empty((0, 0, len(label_columns(target))))), set(by_key)


def stacked(parts, columns):
    """One DataFrame from (key, {column: array}) parts: the key's values repeated per row
    (names as categoricals, much faster to build than a string per row)."""
    lengths = [len(next(iter(arrays.values()))) for _, arrays in parts]
    data = {}
    for column in columns:
        if parts and column in parts[0][1]:
            data[column] = np.concatenate([arrays[column] for _, arrays in parts])
            continue
        values = [key[column] for key, _ in parts]
        if values and all(isinstance(value, str) for value in values):
            names = list(dict.fromkeys(values))
            codes = np.repeat([names.index(value) for value in values], lengths)
            data[column] = pd.Categorical.from_codes(codes, names)
        else:
            data[column] = np.repeat(values, lengths)
    return pd.DataFrame(data, columns=columns)


# --- statistics across seeds -------------------------------------------------------------

def mean_over_seeds(values, level, limits=(-1.0, 1.0)):
    """The mean over seeds of a statistic with its interval, and the p-value of a zero mean.

    `values` has one row per seed: column 0 the statistic on the test set, the others on the
    patient resamples (the same resamples for every run). The variance of the seed mean is
    the seeds' variance over their number, s^2 / n, plus the test set's: the variance of the
    seed mean over the patient resamples. Interval and p-value follow Student's t with
    Welch-Satterthwaite's degrees of freedom: n - 1 where seeds dominate, growing without
    bound where the test set does. One seed gives the test set's part alone. The interval is
    clipped to the statistic's `limits` (an AUROC lies in [0, 1], a difference in [-1, 1]):
    two seeds give one degree of freedom and intervals wider than that.

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
    freedom = variance ** 2 / (seed_part ** 2 / (count - 1)) if seed_part > 0 else math.inf
    error = math.sqrt(variance)
    half_width = float(stats.t.ppf((1 + level) / 2, freedom)) * error
    p_value = float(2 * stats.t.sf(abs(mean) / error, freedom))
    low, high = np.clip([mean - half_width, mean + half_width], *limits)
    return mean, float(low), float(high), p_value


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
            mean, low, high, p_value = mean_over_seeds(values[ours] - values[theirs], level)
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


def judge_differences(differences, method, level, shared=None):
    """`differences` with `p_adjusted` and `beyond_noise` columns: a multiplicity correction
    (statsmodels' `method`, e.g. fdr_bh or holm) over every comparison of the frame, and
    beyond noise where the adjusted p-value is at most 1 - level.

    Comparisons with fewer than MIN_SEEDS_TO_JUDGE seeds are not judged (NaN). A policy that
    shares its run with another (`shared`: policy -> the policy whose run it is) repeats that
    policy's comparisons: it is left out of the family and takes their adjusted p-value.
    """
    judged = differences.copy()
    judged["p_adjusted"] = math.nan
    judged["beyond_noise"] = pd.Series(pd.NA, index=judged.index, dtype="boolean")
    shared = shared or {}
    family = (judged["seeds"] >= MIN_SEEDS_TO_JUDGE) & judged["p_value"].notna() & ~judged[
        "policy"].isin(list(shared))
    if family.any():
        _, adjusted, _, _ = multipletests(judged.loc[family, "p_value"], alpha=1 - level,
                                          method=method)
        judged.loc[family, "p_adjusted"] = adjusted
    keys = ["arch", "baseline"] + (["target"] if "target" in judged.columns else [])
    for policy, twin in shared.items():
        for index in judged.index[judged["policy"] == policy]:
            match = (judged["policy"] == twin) & (
                judged[keys] == judged.loc[index, keys]).all(axis=1)
            if match.any():
                judged.loc[index, "p_adjusted"] = judged.loc[match, "p_adjusted"].iat[0]
    known = judged["p_adjusted"].notna()
    judged.loc[known, "beyond_noise"] = judged.loc[known, "p_adjusted"] <= 1 - level
    return judged


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


# --- the paper's numbers -------------------------------------------------------------------

@cache
def paper_numbers():
    return yaml.safe_load(PAPER_NUMBERS.read_text())


def paper_frame(section, keys, numbers):
    """A section of paper_numbers.yaml as a DataFrame: its `keys`, and each of its `numbers`
    as column `paper_<name>`. The paper's accuracies are training accuracies in percent:
    they become `paper_train_accuracy`, a fraction."""
    frame = pd.DataFrame(paper_numbers()[section])
    if "accuracy" in numbers:
        frame["accuracy"] = frame["accuracy"] / 100
    return frame[[*keys, *numbers]].rename(columns={
        name: "paper_train_accuracy" if name == "accuracy" else f"paper_{name}"
        for name in numbers})


def beside_paper(table, section, key, compared):
    """Tables 1-4: `table` with the paper's numbers of `section` joined on column `key`, each
    in a `paper_<name>` column right after ours; `compared` maps our column to the paper's
    name of the number it compares with."""
    paper = paper_frame(section, [key], list(compared.values()))
    table = table.merge(paper, on=key, how="left", sort=False)
    columns = [column for column in table.columns if column not in paper.columns[1:]]
    for ours, name in compared.items():
        columns.insert(columns.index(ours) + 1, f"paper_{name}")
    return table[columns]


def paper_rows(section, target, keys, numbers):
    """Tables 5-8: the paper's rows of `target` in `section` (see `paper_frame`)."""
    paper = paper_frame(section, keys, numbers)
    return paper[paper["target"] == target]


def with_paper(table, paper, keys, columns, grid):
    """Tables 5-8: `table`, one target's rows, with the paper's rows of that target joined on
    `keys`, keeping those only the paper has (none when `table` has no rows) so that every
    published number shows; as `columns` in the configured order."""
    paper = paper[paper["target"].isin(table["target"].unique())]
    table = table.merge(paper, on=keys, how="outer", sort=False)
    return ordered(table.reindex(columns=columns), grid)


def ordered(table, grid, **more_orders):
    """Rows in the configured order of targets, architectures and policies, then in the
    order `more_orders` gives other columns (column name -> its values in order)."""
    orders = {"target": grid.targets, "arch": grid.architectures, "policy": grid.policies,
              **more_orders}
    keys = [column for column in orders if column in table.columns]
    if table.empty or not keys:
        return table.reset_index(drop=True)
    rank = {column: {name: i for i, name in enumerate(orders[column])} for column in keys}
    sort_columns = [table[column].map(rank[column]).fillna(len(rank[column])) for column in keys]
    if "seed" in table.columns:
        sort_columns.append(table["seed"])
    order = np.lexsort([column.to_numpy(dtype=float) for column in reversed(sort_columns)])
    return table.iloc[order].reset_index(drop=True)


# --- Tables 1-4: data and settings, one target's rows ----------------------------------------

def label_count_table(label_counts, target=None):
    """Table 1: label, single_label_images, images, and the paper's counts. With a `target`,
    the rows of its disease and 'No Finding' (all rows for the one-class and the multi-label
    target)."""
    counts = ["single_label_images", "images"]
    table = beside_paper(label_counts[["label", *counts]], "table1_label_counts", "label",
                         {name: name for name in counts})
    if target is not None and target not in (ANY_DISEASE, MULTILABEL):
        table = table[table["label"].isin([NO_FINDING, target])].reset_index(drop=True)
    return table


def split_table(split_summary, target):
    """Table 2 row: positives, negatives, images and split sizes, and the paper's. The paper's
    80% "training" images compare with train_and_val."""
    table = split_summary[split_summary["target"] == target].copy()
    if table.empty:
        raise InputError(f"the split summary has no row for target {target!r}; rerun the "
                         "split_summary rule.")
    table.insert(3, "images", table["positives"] + table["negatives"])
    table.insert(6, "train_and_val", table["train"] + table["val"])
    return beside_paper(table.reset_index(drop=True), "table2_splits", "target", {
        "positives": "positives", "negatives": "negatives", "images": "images",
        "train_and_val": "train", "test": "test"})


def batch_table(split_summary, settings, target_runs):
    """Table 3 row: batch size and batches per epoch (training: as the runs counted them, else
    floor(train images / batch size), full batches only; test: ceil(test images / batch size)),
    and the paper's."""
    target = target_runs.target
    sizes = split_table(split_summary, target).iloc[0]
    runs = target_runs.runs
    batch_size = int(runs["batch_size"].iat[0]) if not runs.empty else (
        settings[target]["batch_size"])
    train_batches = (int(runs["steps_per_epoch"].iat[0]) if not runs.empty
                     else sizes["train"] // batch_size)
    table = pd.DataFrame([{"target": target, "batch_size": batch_size,
                           "train_images": int(sizes["train"]), "train_batches": train_batches,
                           "test_images": int(sizes["test"]),
                           "test_batches": math.ceil(sizes["test"] / batch_size)}])
    compared = ["batch_size", "train_batches", "test_batches"]
    return beside_paper(table, "table3_batches", "target", {name: name for name in compared})


def optimizer_table(settings, target):
    """Table 4 row: optimizer, learning rate, decay and momentum as configured, and the paper's."""
    compared = ["optimizer", "learning_rate", "decay", "momentum"]
    table = pd.DataFrame([{"target": target, **{name: settings[target][name]
                                                for name in compared}}])
    return beside_paper(table, "table4_optimizers", "target", {name: name for name in compared})


# --- Tables 5-8: results -------------------------------------------------------------------

def device_kind(gpus):
    """'GPU' when every run had GPUs, 'CPU' when none had, else 'mixed'."""
    kinds = {"GPU" if gpu > 0 else "CPU" for gpu in gpus}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def seed_summary(runs, columns):
    """Per arch x policy: the number of seeds, the mean over seeds of `columns`, the accuracy's
    standard deviation across seeds, and the policy whose runs it shares (`same_schedule`)."""
    grouped = runs.groupby(["arch", "policy"], sort=False)
    table = grouped[list(columns)].mean()
    table.insert(0, "seeds", grouped.size())
    table["accuracy_sd"] = grouped["accuracy"].std()
    return table.join(same_schedule(runs))


def same_schedule(runs):
    """Per arch x policy: the policy whose runs it shares (same schedule), else None."""
    return runs.groupby(["arch", "policy"], sort=False)["shared_run_of"].first().rename(
        "same_schedule_as")


def results_table(target_runs, auroc, grid):
    """Table 5 rows of one target: per arch x policy, mean over seeds of the test metrics
    (accuracy and AUROC also with their standard deviation across seeds), AUROC's interval
    over seeds and test patients, the last epoch's training accuracy, and the paper's."""
    runs = target_runs.runs
    columns = ["target", "arch", "policy", "same_schedule_as", "seeds", "epochs",
               "train_accuracy", "paper_train_accuracy", "paper_epochs", "accuracy",
               "accuracy_sd", "sensitivity", "specificity", "f1", "auroc", "auroc_sd",
               "auroc_ci_low", "auroc_ci_high"]
    keys = ["target", "arch", "policy"]
    paper = paper_rows("table5_results", target_runs.target, keys, ["epochs", "accuracy"])
    if runs.empty:
        return ordered(paper.reindex(columns=columns), grid)
    table = seed_summary(runs, ["epochs", "train_accuracy", "accuracy", "sensitivity",
                                "specificity", "f1"])
    table = table.reset_index().merge(auroc.drop(columns="seeds"), on=["arch", "policy"])
    table.insert(0, "target", target_runs.target)
    return with_paper(table, paper, keys, columns, grid)


def architecture_table(target_runs, grid):
    """Table 6 rows of one target: per arch, over all its runs, time per epoch (wall and
    device-seconds), throughput, mean metrics, the policy with the best mean AUROC, and the
    paper's. A run shared by two policies counts once."""
    runs = target_runs.runs[target_runs.runs["shared_run_of"].isna()]
    columns = ["target", "arch", "runs", "device", "device_kind", "epochs", "seconds_per_epoch",
               "device_seconds_per_epoch", "paper_hours_per_epoch", "images_per_second",
               "train_accuracy", "paper_train_accuracy", "paper_epochs", "accuracy", "auroc",
               "best_policy", "best_policy_auroc"]
    keys = ["target", "arch"]
    paper = paper_rows("table6_architectures", target_runs.target, keys,
                       ["hours_per_epoch", "epochs", "accuracy"])
    if runs.empty:
        return ordered(paper.reindex(columns=columns), grid)
    rows = []
    for arch, group in runs.groupby("arch", sort=False):
        by_policy = group.groupby("policy", sort=False)["auroc"].mean()
        rows.append({
            "target": target_runs.target, "arch": arch, "runs": len(group),
            "device": "; ".join(sorted(group["device"].unique())),
            "device_kind": device_kind(group["gpus"]),
            "epochs": group["epochs"].mean(),
            "seconds_per_epoch": (group["train_seconds"] / group["epochs"]).mean(),
            "device_seconds_per_epoch": (group["device_seconds"] / group["epochs"]).mean(),
            "images_per_second": group["images_per_second"].mean(),
            "train_accuracy": group["train_accuracy"].mean(),
            "accuracy": group["accuracy"].mean(), "auroc": group["auroc"].mean(),
            "best_policy": by_policy.idxmax(), "best_policy_auroc": by_policy.max()})
    return with_paper(pd.DataFrame(rows), paper, keys, columns, grid)


def policy_table(target_runs, auroc, differences, reach, baselines, grid):
    """Table 7 rows of one target: per arch x policy, the mean and spread across seeds, and per
    baseline the paired AUROC difference with its interval, its p-value before and after the
    multiplicity correction and whether it is beyond noise (`judge_differences`; empty with
    too few seeds), and the epochs (median and mean over the seeds that got there) and
    device-seconds (mean) to reach the baseline's best validation accuracy; the paper's
    accuracy and epochs where it gives them."""
    runs = target_runs.runs
    columns = ["target", "arch", "policy", "same_schedule_as", "seeds", "device_kind", "epochs",
               "train_accuracy",
               "paper_train_accuracy", "paper_epochs", "best_val_accuracy", "accuracy",
               "accuracy_sd", "auroc", "auroc_sd", "device_seconds"]
    for baseline in baselines:
        columns += [f"delta_auroc_vs_{baseline}", f"delta_auroc_vs_{baseline}_ci_low",
                    f"delta_auroc_vs_{baseline}_ci_high", f"p_vs_{baseline}",
                    f"p_adjusted_vs_{baseline}", f"beyond_noise_vs_{baseline}",
                    f"epochs_to_{baseline}_best", f"epochs_to_{baseline}_best_mean",
                    f"device_seconds_to_{baseline}_best", f"seeds_reaching_{baseline}_best"]
    keys = ["target", "arch", "policy"]
    paper = paper_rows("table7_policies", target_runs.target, keys, ["epochs", "accuracy"])
    if runs.empty:
        return ordered(paper.reindex(columns=columns), grid)
    table = seed_summary(runs, ["epochs", "train_accuracy", "best_val_accuracy", "accuracy",
                                "device_seconds"])
    table["device_kind"] = runs.groupby(["arch", "policy"], sort=False)["gpus"].agg(device_kind)
    table = table.reset_index().merge(auroc[["arch", "policy", "auroc", "auroc_sd"]],
                                      on=["arch", "policy"])
    for baseline in baselines:
        delta = differences[differences["baseline"] == baseline].rename(columns={
            "delta_auroc": f"delta_auroc_vs_{baseline}",
            "ci_low": f"delta_auroc_vs_{baseline}_ci_low",
            "ci_high": f"delta_auroc_vs_{baseline}_ci_high", "p_value": f"p_vs_{baseline}",
            "p_adjusted": f"p_adjusted_vs_{baseline}",
            "beyond_noise": f"beyond_noise_vs_{baseline}"}).drop(columns=["baseline", "seeds"])
        table = table.merge(delta, on=["arch", "policy"], how="left")
        reached = reach[reach["baseline"] == baseline]
        by_policy = reached.groupby(["arch", "policy"], sort=False)
        summary = pd.DataFrame({
            f"epochs_to_{baseline}_best": by_policy["epoch"].median(),
            f"epochs_to_{baseline}_best_mean": by_policy["epoch"].mean(),
            f"device_seconds_to_{baseline}_best": by_policy["device_seconds"].mean(),
            f"seeds_reaching_{baseline}_best": by_policy["epoch"].count(),
        }).reset_index()
        table = table.merge(summary, on=["arch", "policy"], how="left")
    table.insert(0, "target", target_runs.target)
    return with_paper(table, paper, keys, columns, grid)


def schedule_extras(policy, schedule):
    """The policy-specific schedule parameters beyond the bounds and step size, as text."""
    return ", ".join(f"{name}={schedule[name]:g}" for name in extra_parameters(policy)
                     if name in schedule)


def clr_table(target_runs, settings, lr_finder, grid):
    """Table 8 rows of one target: per arch x cyclical policy (schedules with a max_lr), the
    bounds the runs used and where they came from, the step size in optimizer steps and in
    epochs, the epochs, other schedule parameters, the LR finder's bounds with the rule that
    gave them and its check's verdict, and the paper's.

    `lr_finder` maps arch to the LR-finder JSON of this target (absent: none was run). For
    one_cycle, base_lr is its starting LR, max_lr / div_factor.
    """
    runs = target_runs.runs
    columns = ["target", "arch", "policy", "bounds_from", "base_lr", "paper_base_lr", "max_lr",
               "paper_max_lr", "step_size", "step_size_epochs", "paper_step_size_epochs",
               "epochs", "paper_epochs", "other", "lr_finder_rule", "lr_finder_base_lr",
               "lr_finder_max_lr", "lr_finder_check"]
    paper = paper_rows("table8_clr", target_runs.target, ["target", "arch", "policy"],
                       ["base_lr", "max_lr", "step_size_epochs", "epochs"])
    configured = settings[target_runs.target]
    rows = []
    for (arch, policy), group in runs.groupby(["arch", "policy"], sort=False):
        schedule = group["schedule"].iat[0]
        if "max_lr" not in schedule:
            continue
        found = lr_finder.get(arch)
        from_finder = found is not None and any(configured.get(bound) is None
                                                for bound in lr_bounds(policy))
        base_lr = (schedule["max_lr"] / schedule["div_factor"] if policy == "one_cycle"
                   else schedule["base_lr"])
        step_size = schedule.get("step_size", math.nan)
        rows.append({
            "target": target_runs.target, "arch": arch, "policy": policy,
            "bounds_from": (f"LR finder ({found['rule']}"
                            + (", fallback)" if found.get("fallback_used") else ")"))
            if from_finder else "config",
            "base_lr": base_lr, "max_lr": schedule["max_lr"], "step_size": step_size,
            "step_size_epochs": step_size / group["steps_per_epoch"].iat[0],
            "epochs": group["epochs"].iat[0], "other": schedule_extras(policy, schedule),
            "lr_finder_rule": (found["rule"] or "none passed") if found else None,
            "lr_finder_base_lr": found["base_lr"] if found and found["base_lr"] else math.nan,
            "lr_finder_max_lr": found["max_lr"] if found and found["max_lr"] else math.nan,
            "lr_finder_check": found["verdict"] if found else None})
    table = pd.DataFrame(rows, columns=[c for c in columns if not c.startswith("paper_")])
    return with_paper(table, paper, ["target", "arch", "policy"], columns, grid)
