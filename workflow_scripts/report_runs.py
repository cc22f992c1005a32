"""The report's runs: every finished run of one target, read, checked and stacked.

`load_target_runs` reads the run folders the report takes as inputs (see `runs` for their
files) in the configured grid's order, and `ordered` sorts any table into that order. A
policy with a twin (`plan`) has no runs of its own: it appears with copies of its twin's
runs. Runs of every learning-rate scale are read; `TargetRuns.subset` keeps some of them
(the comparison at the study's own rates keeps scale 1).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workflow_scripts.labels import label_columns
from workflow_scripts.runs import (
    FILES,
    HISTORY_COLUMNS,
    METRIC_NUMBERS,
    SETTING_KEYS,
    read_history,
    read_lr,
    read_metrics,
    read_predictions,
    run_key,
    score_column,
)
from workflow_scripts.stage import InputError

LR_POINTS = 2000  # learning rates kept per run for the schedule figure
RUN_COLUMNS = ("arch", "policy", "seed", "lr_scale")  # which run of the target a row is of


def missing_runs(found, grid, target):
    """The trained runs of `target` in `grid` that are not among `found` (keys target, arch,
    policy, seed, lr_scale): left out of the report with report.allow_missing."""
    return pd.DataFrame([key for key in grid.run_keys(target) if key not in found],
                        columns=["target", "arch", "policy", "seed", "lr_scale"])


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

    `runs` has one row per run (arch, policy, seed, lr_scale, the metrics.json numbers, device,
    optimizer, momentum, batch_size, steps_per_epoch, schedule as a dict, folder); `histories`
    one row per run and epoch, with `device_seconds` accumulated over epochs; `learning_rates`
    the LR (arch, policy, seed, lr_scale, step, lr) of one seed per arch x policy x scale, at
    up to LR_POINTS steps spread evenly over the run; `test` the target's test images
    (image_index, patient_id and its label columns, `labels.label_columns`) and `scores`
    their predicted scores, runs (in the order of `runs`) x images x label columns.
    """

    target: str
    runs: pd.DataFrame
    histories: pd.DataFrame
    learning_rates: pd.DataFrame
    test: pd.DataFrame
    scores: np.ndarray

    def subset(self, keep):
        """The runs where the boolean array `keep` (one value per row of `runs`) holds, with
        their histories, learning rates and scores."""
        keep = np.asarray(keep, dtype=bool)
        runs = self.runs[keep].reset_index(drop=True)
        chosen = pd.MultiIndex.from_frame(runs[list(RUN_COLUMNS)])
        return TargetRuns(self.target, runs,
                          *(frame[pd.MultiIndex.from_frame(frame[list(RUN_COLUMNS)]).isin(chosen)]
                            .reset_index(drop=True)
                            for frame in (self.histories, self.learning_rates)),
                          self.test, self.scores[keep])

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
    policy with a twin appears with copies of the twin's runs (`twin_of` names the
    policy whose runs they are). Returns (TargetRuns, the keys of the runs found)."""
    by_key = {}
    for folder in map(Path, run_folders):
        metrics = read_metrics(folder / FILES["metrics"])
        by_key[run_key(metrics)] = folder, metrics
    rows, histories, learning_rates, scores = [], [], [], []
    reference = reference_path = None
    with_learning_rates = set()  # arch x policy x scale: one seed's learning rates are drawn
    twins = grid.twins_of(target)
    for key in grid.run_keys(target):
        if key not in by_key:
            continue
        _, arch, trained, seed, lr_scale = key
        folder, metrics = by_key[key]
        history = read_history(folder / FILES["history"])
        predictions = read_predictions(folder / FILES["predictions"], target)
        if reference is None:
            reference, reference_path = predictions, folder / FILES["predictions"]
        run_scores = aligned_scores(predictions, reference, folder / FILES["predictions"],
                                    reference_path, target)
        settings = metrics["settings"]
        history["device_seconds"] = np.cumsum(history["seconds"]) * max(metrics["gpus"], 1)
        for policy in [trained, *(p for p, twin in twins.items() if twin == trained)]:
            key = {"arch": arch, "policy": policy, "seed": seed, "lr_scale": lr_scale}
            scores.append(run_scores)
            rows.append({**key, **{name: metrics[name] for name in METRIC_NUMBERS},
                         "device": metrics["device"],
                         **{name: settings[name] for name in SETTING_KEYS},
                         "folder": str(folder),
                         "twin_of": trained if policy != trained else None})
            histories.append((key, history))
            if (arch, policy, lr_scale) not in with_learning_rates:
                with_learning_rates.add((arch, policy, lr_scale))
                learning_rates.append((key, thinned(read_lr(folder / FILES["lr"]))))
    key_columns = list(RUN_COLUMNS)
    runs = pd.DataFrame(rows, columns=[*key_columns, *METRIC_NUMBERS, "device", *SETTING_KEYS,
                                       "folder", "twin_of"])
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

def device_kind(gpus):
    """'GPU' when every run had GPUs, 'CPU' when none had, else 'mixed'."""
    kinds = {"GPU" if gpu > 0 else "CPU" for gpu in gpus}
    return kinds.pop() if len(kinds) == 1 else "mixed"
